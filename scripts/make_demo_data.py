"""Write the demo dataset: short customer messages -> one-line JSON orders.

The task was written for this project (CC0-1.0, see workbench/demo/DATA_LICENSE.md).
The base demo model cannot do it (it answers in prose or invents keys); after a few
minutes of LoRA on a laptop CPU it can. Success is judged by code: the answer must
parse as JSON and equal the expected object exactly.

    python scripts/make_demo_data.py    # rewrites workbench/demo/orders*.jsonl
"""

import json
import random
from pathlib import Path

INSTRUCTION = "Extract the order as JSON with keys name, city, item, quantity."

TRAIN_NAMES = ["Maria", "Tom", "Aisha", "Kenji", "Lena", "Omar", "Sofia", "Lucas", "Priya",
               "Jonas", "Chloe", "Mateo", "Hana", "Ivan", "Grace", "Noah", "Zara", "Felix",
               "Amara", "Leo", "Nadia", "Oscar", "Elif", "Ruben", "Mei", "Sam", "Clara", "Tariq",
               "Ingrid", "Diego", "Yuki", "Emma", "Kofi", "Lara", "Pavel", "Rosa"]
TEST_NAMES = ["Beatriz", "Hugo", "Ananya", "Marek", "Fatima", "Elias", "Wen", "Greta",
              "Santiago", "Olu", "Freya", "Dmitri"]
TRAIN_CITIES = ["Lisbon", "Oslo", "Nairobi", "Osaka", "Berlin", "Cairo", "Madrid", "Lyon",
                "Pune", "Bergen", "Quebec", "Lima", "Kyoto", "Kyiv", "Dublin", "Boston",
                "Accra", "Porto", "Seoul", "Vienna", "Denver", "Tunis", "Perth", "Milan"]
TEST_CITIES = ["Krakow", "Austin", "Hanoi", "Malmo", "Cusco", "Leeds", "Busan", "Graz"]
TRAIN_ITEMS = ["lamp", "chair", "mug", "notebook", "backpack", "candle", "towel", "kettle",
               "umbrella", "blanket", "pillow", "teapot", "helmet", "jacket", "scarf", "bottle",
               "basket", "mirror", "clock", "stool", "plate", "bowl", "glove", "sticker"]
TEST_ITEMS = ["lantern", "cushion", "wallet", "blender", "poster", "hammock", "planter", "toaster"]

TEMPLATES = [
    "Hi, this is {name} from {city}. Please send {qty_items}.",
    "{name} here ({city}). I'd like to order {qty_items}, thanks!",
    "Order for {name} in {city}: {qty_items}.",
    "Hello! Could you ship {qty_items} to {name} in {city}?",
    "Please deliver {qty_items} to {city}. The order is for {name}.",
    "I'm {name}, living in {city}, and I need {qty_items} as soon as possible.",
    "New order: {qty_items} for {name} ({city}).",
    "Good morning, {name} writing from {city}. Can I get {qty_items}?",
    "Ship to {city}, attention {name}: {qty_items}.",
    "{name} from {city} wants {qty_items}.",
    "hey its {name} in {city}, send me {qty_items} pls",
    "Dear shop, my name is {name} and I live in {city}. I would like {qty_items}.",
    "Can you send {qty_items} to {city}? Name on the parcel: {name}.",
    "Quick one from {name} ({city}) - {qty_items}, please.",
    "To: store. From: {name}, {city}. Request: {qty_items}.",
    "{qty_items_cap} for {name}, delivery address in {city}.",
    "Hi there, {name} again. This time I need {qty_items} sent to {city}.",
    "Please put me down for {qty_items}. {name}, {city}.",
    "We in {city} need {qty_items}. Contact: {name}.",
    "Reorder for {name} ({city}): {qty_items}. Same as last month.",
]


def phrase(quantity: int, item: str) -> str:
    return f"{quantity} {item}" if quantity == 1 else f"{quantity} {item}s"


def example(rng: random.Random, names, cities, items) -> dict:
    name, city, item = rng.choice(names), rng.choice(cities), rng.choice(items)
    quantity = rng.choice([1, 1, 2, 2, 3, 4, 5, 6, 8, 10, 12, 20])
    qty_items = phrase(quantity, item)
    message = rng.choice(TEMPLATES).format(name=name, city=city, qty_items=qty_items,
                                           qty_items_cap=qty_items[0].upper() + qty_items[1:])
    answer = json.dumps({"name": name, "city": city, "item": item, "quantity": quantity})
    return {"messages": [{"role": "user", "content": f"{INSTRUCTION}\n\n{message}"},
                         {"role": "assistant", "content": answer}]}


def main() -> None:
    rng = random.Random(2026)
    out = Path(__file__).resolve().parent.parent / "workbench" / "demo"
    train = [example(rng, TRAIN_NAMES, TRAIN_CITIES, TRAIN_ITEMS) for _ in range(240)]
    test = [example(rng, TEST_NAMES, TEST_CITIES, TRAIN_ITEMS + TEST_ITEMS) for _ in range(30)]
    for name, rows in (("orders.jsonl", train), ("orders_test.jsonl", test)):
        (out / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(train)} training and {len(test)} test examples to {out}")


if __name__ == "__main__":
    main()
