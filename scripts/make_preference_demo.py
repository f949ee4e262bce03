"""Write the preference demo's data: everyday questions, each with a one-sentence answer
(chosen) and a chatty answer of several sentences that says the same (rejected).

The behaviour taught is brevity, which a code judge can check (`workbench.demo.brevity`:
one sentence, at most 20 words). Both answers are right, so the pairs teach how to answer,
not what. Written for this project (CC0-1.0, see workbench/demo/DATA_LICENSE.md).

    python scripts/make_preference_demo.py    # rewrites workbench/demo/brevity*.jsonl
"""

import json
import random
from pathlib import Path

CAPITALS = [("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"),
            ("Portugal", "Lisbon"), ("Japan", "Tokyo"), ("Egypt", "Cairo"), ("Kenya", "Nairobi"),
            ("Canada", "Ottawa"), ("Australia", "Canberra"), ("Peru", "Lima"),
            ("Norway", "Oslo"), ("Sweden", "Stockholm"), ("Finland", "Helsinki"),
            ("Denmark", "Copenhagen"), ("Poland", "Warsaw"), ("Austria", "Vienna"),
            ("Greece", "Athens"), ("Turkey", "Ankara"), ("India", "New Delhi"),
            ("China", "Beijing"), ("South Korea", "Seoul"), ("Thailand", "Bangkok"),
            ("Vietnam", "Hanoi"), ("Ireland", "Dublin"), ("Hungary", "Budapest"),
            ("Russia", "Moscow"), ("Cuba", "Havana"), ("Iran", "Tehran"), ("Chile", "Santiago")]
TEST_CAPITALS = [("Belgium", "Brussels"), ("Ghana", "Accra"), ("Colombia", "Bogota"),
                 ("Morocco", "Rabat"), ("Ukraine", "Kyiv"), ("Indonesia", "Jakarta"),
                 ("Argentina", "Buenos Aires"), ("Switzerland", "Bern")]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
OPPOSITES = [("hot", "cold"), ("big", "small"), ("fast", "slow"), ("light", "dark"),
             ("happy", "sad"), ("early", "late"), ("full", "empty"), ("open", "closed"),
             ("hard", "soft"), ("wet", "dry"), ("young", "old"), ("up", "down")]
COLOURS = [("blue", "yellow", "green"), ("red", "yellow", "orange"), ("red", "blue", "purple"),
           ("red", "white", "pink"), ("black", "white", "grey")]
UNITS = [("minutes", "hour", 60), ("seconds", "minute", 60), ("hours", "day", 24),
         ("days", "week", 7), ("months", "year", 12), ("centimetres", "metre", 100)]

# (thing, a one-sentence definition): everyday words a small model explains at length
DEFINITIONS = [
    ("a volcano", "A volcano is an opening in the ground where molten rock comes out."),
    ("a glacier", "A glacier is a slow river of ice that forms where snow builds up."),
    ("a noun", "A noun is a word that names a person, place or thing."),
    ("a verb", "A verb is a word that describes an action or a state."),
    ("photosynthesis", "Photosynthesis is how plants turn light, water and air into sugar."),
    ("a planet", "A planet is a large body that travels around a star."),
    ("a mammal", "A mammal is a warm-blooded animal that feeds its young with milk."),
    ("an island", "An island is a piece of land with water all around it."),
    ("a desert", "A desert is a place that gets very little rain."),
    ("a river", "A river is a large stream of fresh water flowing to the sea or a lake."),
    ("a bridge", "A bridge is a structure that lets people cross a river, road or valley."),
    ("a library", "A library is a place where people can borrow books."),
    ("a thermometer", "A thermometer is a tool that measures temperature."),
    ("a compass", "A compass is a tool whose needle points north."),
    ("a recipe", "A recipe is a list of ingredients and steps for making a dish."),
    ("a budget", "A budget is a plan for how to spend and save money."),
    ("a vaccine", "A vaccine trains the body to fight a disease before it strikes."),
    ("gravity", "Gravity is the force that pulls things towards each other."),
    ("an orbit", "An orbit is the curved path one body takes around another."),
    ("a fraction", "A fraction is a part of a whole, written like one half."),
    ("a poem", "A poem is a piece of writing that uses rhythm and imagery."),
    ("a map", "A map is a drawing of an area seen from above."),
    ("a calendar", "A calendar is a chart of the days, weeks and months of a year."),
    ("an umbrella", "An umbrella is a folding canopy that keeps the rain off."),
    ("a battery", "A battery stores energy and releases it as electricity."),
    ("a seed", "A seed is the part of a plant that can grow into a new plant."),
    ("a cloud", "A cloud is a mass of tiny water droplets floating in the sky."),
    ("an insect", "An insect is a small animal with six legs and three body parts."),
    ("a continent", "A continent is one of the Earth's very large areas of land."),
    ("a harbour", "A harbour is sheltered water where ships can stay safely."),
    ("a telescope", "A telescope is a tool that makes distant things look closer."),
    ("a magnet", "A magnet is an object that pulls iron towards it."),
    ("a fossil", "A fossil is the preserved trace of a plant or animal from long ago."),
    ("an election", "An election is a vote to choose people for a job or office."),
    ("a museum", "A museum is a building where objects of interest are shown."),
    ("a dictionary", "A dictionary is a book that lists words and their meanings."),
    ("a tide", "A tide is the regular rise and fall of the sea."),
    ("a habit", "A habit is something a person does often, almost without thinking."),
    ("a pulse", "A pulse is the beat of the heart felt in an artery."),
    ("a keyboard", "A keyboard is a set of keys for typing into a computer."),
]
TEST_DEFINITIONS = [
    ("a canyon", "A canyon is a deep valley with steep sides cut by a river."),
    ("an adjective", "An adjective is a word that describes a noun."),
    ("a comet", "A comet is a ball of ice and dust that travels around the Sun."),
    ("a reptile", "A reptile is a cold-blooded animal with scales, such as a lizard."),
    ("a microscope", "A microscope is a tool that makes tiny things look bigger."),
    ("a lighthouse", "A lighthouse is a tower with a bright light that guides ships."),
    ("a thunderstorm", "A thunderstorm is a storm with lightning and thunder."),
    ("a passport", "A passport is a document that lets a person travel abroad."),
    ("an orchestra", "An orchestra is a large group of musicians playing together."),
    ("a skeleton", "A skeleton is the frame of bones inside a body."),
    ("a rainbow", "A rainbow is a band of colours made when sunlight passes through rain."),
    ("a volcano's crater", "A crater is the bowl-shaped opening at the top of a volcano."),
]

OPENERS = ["Great question!", "Thanks for asking!", "Sure, I can help with that.",
           "That is a good thing to wonder about.", "Happy to help!"]
CLOSERS = ["I hope this helps, and let me know if you have any other questions!",
           "Feel free to ask if you would like to know more.",
           "Let me know if there is anything else I can help you with today.",
           "I hope that answers your question."]


def chatty(answer: str, detail: str, rng: random.Random) -> str:
    return f"{rng.choice(OPENERS)} {answer} {detail} {rng.choice(CLOSERS)}"


def capital_rows(pairs, rng):
    for country, city in pairs:
        yield (f"What is the capital of {country}?", f"The capital of {country} is {city}.",
               f"It is the largest political centre of {country}, where the government sits.")


def sum_rows(rng, count, low, high):
    for _ in range(count):
        a, b = rng.randint(low, high), rng.randint(low, high)
        yield (f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}.",
               f"To work it out, start at {a} and count on {b} more, which gives {a + b}.")


def day_rows(days):
    for index, day in enumerate(days):
        after = DAYS[(DAYS.index(day) + 1) % 7]
        yield (f"Which day comes after {day}?", f"{after} comes after {day}.",
               f"The week goes in order, so once {day} is over the next day is {after}.")


def opposite_rows(pairs):
    for word, opposite in pairs:
        yield (f"What is the opposite of {word}?", f"The opposite of {word} is {opposite}.",
               f"Words with opposite meanings are called antonyms, and {opposite} is the "
               f"antonym people use most for {word}.")


def colour_rows():
    for first, second, mixed in COLOURS:
        yield (f"What colour do you get by mixing {first} and {second}?",
               f"Mixing {first} and {second} gives {mixed}.",
               f"When paints of those two colours are blended, the result is {mixed}.")


def unit_rows(rng, count):
    for _ in range(count):
        small, big, factor = rng.choice(UNITS)
        n = rng.randint(2, 9)
        yield (f"How many {small} are in {n} {big}s?", f"There are {n * factor} {small} in {n} "
               f"{big}s.", f"Each {big} has {factor} {small}, so you multiply {n} by {factor}.")


def definition_rows(pairs):
    for thing, definition in pairs:
        yield (f"What is {thing}?", definition,
               f"People come across {thing.split()[-1]} in everyday life, and there is a lot "
               "more one could say about its history and its many kinds.")


def rows(items, rng):
    out = []
    for prompt, short, detail in items:
        out.append({"prompt": prompt, "chosen": short, "rejected": chatty(short, detail, rng)})
    return out


def main() -> None:
    rng = random.Random(7)
    train = rows(list(capital_rows(CAPITALS, rng)) + list(sum_rows(rng, 20, 2, 49))
                 + list(day_rows(DAYS)) + list(opposite_rows(OPPOSITES)) + list(colour_rows())
                 + list(unit_rows(rng, 16)) + list(definition_rows(DEFINITIONS)), rng)
    # Held out: other countries, words and things, weighted to the questions a small
    # instruct model answers at length (definitions, capitals).
    test = rows(list(capital_rows(TEST_CAPITALS, rng)) + list(definition_rows(TEST_DEFINITIONS)),
                rng)
    rng.shuffle(train)
    seen = {row["prompt"] for row in train}
    test = [row for row in test if row["prompt"] not in seen]
    folder = Path(__file__).resolve().parent.parent / "workbench" / "demo"
    for name, data in (("brevity.jsonl", train), ("brevity_test.jsonl", test)):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in data), encoding="utf-8")
        print(f"{name}: {len(data)} pairs")


if __name__ == "__main__":
    main()
