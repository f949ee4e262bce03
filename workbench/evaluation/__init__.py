"""Evaluation beyond loss, as plain data and functions (no model here):

    scorers.py   task scores: built-ins (exact, json_equal, ...) and your own functions
    cases.py     held-out examples as (prompt, reference) cases to answer and score
    general.py   the forgetting check's general text (shipped, CC0) or your own file
    ratings.py   blind A/B ratings: the ratings.jsonl format and win rates with intervals

The engine answers the cases and computes the losses (`engine/evaluation.py`); the
dashboard's Rate tab and `workbench eval` are built on these.
"""
