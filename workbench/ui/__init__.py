"""The notebook dashboard: ipywidgets views over the config and the event stream.

Widgets only read events and set `Control`; they never touch the trainer.
"""
