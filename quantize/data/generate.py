"""Writes the local training/evaluation text for the tiny model (run once; output is committed).

Nothing can be downloaded, so the corpus is generated from templates: facts the model can
learn (capitals, opposites, weekdays, animal sounds, colours), short stories for varied
English, and Q&A pairs in the same "Q: ...\\nA: ..." form the chat template uses.
The held-out text reuses the templates with a different seed so perplexity measures
generalisation, not memorised lines. eval_large.jsonl (the suite builtin:large) asks
thousands of cloze questions on new stories drawn with yet another seed — who the story is
about, who was given something, a capital, the next day — plus the facts in statement and
Q&A form, so the paired quality gate has enough items to decide a 1.2-point limit.
eval_medium.jsonl (builtin:medium) is a fixed random sample of those items, in their order
and with their ids: enough to decide the demo's build in less than a minute of scoring.
Run: python -m quantize.data.generate
"""
from __future__ import annotations

import json
import random
import re
from pathlib import Path

HERE = Path(__file__).parent

CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo",
    "China": "Beijing", "Egypt": "Cairo", "Kenya": "Nairobi", "Peru": "Lima", "Chile": "Santiago",
    "Canada": "Ottawa", "Mexico": "Mexico City", "Russia": "Moscow", "India": "New Delhi",
    "Norway": "Oslo", "Sweden": "Stockholm", "Finland": "Helsinki", "Poland": "Warsaw",
    "Greece": "Athens", "Turkey": "Ankara", "Portugal": "Lisbon", "Ireland": "Dublin",
    "Austria": "Vienna", "Hungary": "Budapest", "Cuba": "Havana", "Argentina": "Buenos Aires",
    "Australia": "Canberra", "Thailand": "Bangkok", "Vietnam": "Hanoi", "Iran": "Tehran",
    "Denmark": "Copenhagen", "Belgium": "Brussels",
}
OPPOSITES = {
    "hot": "cold", "big": "small", "fast": "slow", "happy": "sad", "up": "down", "old": "young",
    "light": "dark", "early": "late", "hard": "soft", "full": "empty", "wet": "dry", "open": "closed",
    "rich": "poor", "loud": "quiet", "high": "low", "long": "short", "strong": "weak", "clean": "dirty",
    "heavy": "light", "thick": "thin", "near": "far", "first": "last", "day": "night", "good": "bad",
}
SOUNDS = {
    "dog": "bark", "cat": "meow", "cow": "moo", "duck": "quack", "sheep": "baa", "lion": "roar",
    "horse": "neigh", "pig": "oink", "owl": "hoot", "bee": "buzz", "snake": "hiss", "frog": "croak",
}
COLOURS = {
    "grass": "green", "the sky": "blue", "snow": "white", "coal": "black", "a banana": "yellow",
    "a tomato": "red", "an orange": "orange", "a plum": "purple", "chocolate": "brown",
}
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
NAMES = ["Anna", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Hugo", "Iris", "Jonas",
         "Kira", "Liam", "Maya", "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Sam", "Tara"]
PLACES = ["the market", "the library", "the park", "the station", "the school", "the river",
          "the bakery", "the museum", "the harbour", "the garden", "the office", "the farm"]
ITEMS = ["apples", "books", "pencils", "eggs", "flowers", "cups", "shirts", "stamps", "candles",
         "oranges", "tickets", "loaves of bread"]
VERBS = ["bought", "found", "sold", "counted", "carried", "painted", "borrowed", "packed"]
FEELINGS = ["happy", "tired", "calm", "curious", "proud", "hungry", "surprised", "sleepy"]
LARGE_STORIES = 2000
MEDIUM_ITEMS = 2000
MEDIUM_SEED = 5
WEATHER = ["sunny", "rainy", "windy", "cloudy", "cold", "warm", "foggy", "snowy"]


def _facts(rng: random.Random) -> list[str]:
    """Each fact in several phrasings, statements and Q&A, so the model can learn it."""
    docs: list[str] = []
    for country, city in CAPITALS.items():
        docs += [f"The capital of {country} is {city}.", f"{city} is the capital of {country}.",
                 f"Q: What is the capital of {country}?\nA: {city}."]
    for a, b in OPPOSITES.items():
        docs += [f"The opposite of {a} is {b}.", f"Q: What is the opposite of {a}?\nA: {b}."]
    for animal, sound in SOUNDS.items():
        docs += [f"A {animal} says {sound}.", f"Q: What does a {animal} say?\nA: {sound}."]
    for thing, colour in COLOURS.items():
        docs += [f"The colour of {thing} is {colour}.", f"Q: What colour is {thing}?\nA: {colour}."]
    for seq, label in ((DAYS, "day"), (MONTHS, "month")):
        for i, cur in enumerate(seq):
            nxt = seq[(i + 1) % len(seq)]
            docs += [f"The {label} after {cur} is {nxt}.", f"Q: What {label} comes after {cur}?\nA: {nxt}."]
    for a in range(1, 6):
        for b in range(1, 6):
            docs.append(f"Q: What is {NUMBERS[a]} plus {NUMBERS[b]}?\nA: {NUMBERS[a + b]}.")
    rng.shuffle(docs)
    return docs


def _story(rng: random.Random) -> str:
    name, other = rng.sample(NAMES, 2)
    n = rng.randint(2, 10)
    day = rng.choice(DAYS)
    parts = [
        f"On {day} {name} went to {rng.choice(PLACES)}.",
        f"It was {rng.choice(WEATHER)} and {name} felt {rng.choice(FEELINGS)}.",
        f"{name} {rng.choice(VERBS)} {NUMBERS[n]} {rng.choice(ITEMS)} and gave {NUMBERS[n // 2]} to {other}.",
        f"{other} said thank you and walked home before {rng.choice(['noon', 'dinner', 'dark', 'sunset'])}.",
    ]
    if rng.random() < 0.5:
        country = rng.choice(list(CAPITALS))
        parts.append(f"Later {name} read that the capital of {country} is {CAPITALS[country]}.")
    if rng.random() < 0.4:
        parts.append(f"The next day was {DAYS[(DAYS.index(day) + 1) % 7]}.")
    return " ".join(parts)


def build(seed: int, n_stories: int, fact_repeats: int) -> list[str]:
    rng = random.Random(seed)
    docs = [_story(rng) for _ in range(n_stories)]
    for _ in range(fact_repeats):
        docs += _facts(rng)
    rng.shuffle(docs)
    return docs


def eval_items() -> list[dict[str, str]]:
    """Prompts whose answers appear in the training text; a trained tiny model gets some right."""
    items = [{"prompt": f"Q: What is the capital of {c}?\nA:", "answer": a} for c, a in CAPITALS.items()]
    items += [{"prompt": f"Q: What is the opposite of {w}?\nA:", "answer": o} for w, o in OPPOSITES.items()]
    items += [{"prompt": f"Q: What does a {w} say?\nA:", "answer": s} for w, s in SOUNDS.items()]
    items += [{"prompt": f"Q: What colour is {t}?\nA:", "answer": c} for t, c in COLOURS.items()]
    for seq, label in ((DAYS, "day"), (MONTHS, "month")):
        items += [{"prompt": f"Q: What {label} comes after {cur}?\nA:", "answer": seq[(i + 1) % len(seq)]}
                  for i, cur in enumerate(seq)]
    items += [{"prompt": f"Q: What is {NUMBERS[a]} plus {NUMBERS[b]}?\nA:", "answer": NUMBERS[a + b]}
              for a in range(1, 6) for b in range(1, 6)]
    return items


def _word(answer: str) -> str:
    """A regex accepting the answer as the output's first word(s), whatever follows."""
    return r"^\s*" + re.escape(answer) + r"\b"


def _story_clozes(rng: random.Random) -> list[dict]:
    """One new story in the corpus's template, cut before each word the context determines."""
    name, other = rng.sample(NAMES, 2)
    n, day = rng.randint(2, 10), rng.choice(DAYS)
    text = f"On {day} {name} went to {rng.choice(PLACES)}. It was {rng.choice(WEATHER)} and"
    items = [{"prompt": text, "regex": _word(name)}]
    text += (f" {name} felt {rng.choice(FEELINGS)}. {name} {rng.choice(VERBS)} {NUMBERS[n]} "
             f"{rng.choice(ITEMS)} and gave {NUMBERS[n // 2]} to {other}.")
    items.append({"prompt": text, "regex": _word(other)})
    text += f" {other} said thank you and walked home before {rng.choice(['noon', 'dinner', 'dark', 'sunset'])}."
    if rng.random() < 0.5:
        country = rng.choice(list(CAPITALS))
        items.append({"prompt": f"{text} Later {name} read that the capital of {country} is",
                      "regex": _word(CAPITALS[country])})
    if rng.random() < 0.4:
        items.append({"prompt": f"{text} The next day was", "regex": _word(DAYS[(DAYS.index(day) + 1) % 7])})
    return items


def _fact_clozes() -> list[dict]:
    items = [{"prompt": f"The capital of {c} is", "regex": _word(a)} for c, a in CAPITALS.items()]
    items += [{"prompt": f"{a} is the capital of", "regex": _word(c)} for c, a in CAPITALS.items()]
    items += [{"prompt": f"The opposite of {w} is", "regex": _word(o)} for w, o in OPPOSITES.items()]
    items += [{"prompt": f"A {w} says", "regex": _word(s)} for w, s in SOUNDS.items()]
    items += [{"prompt": f"The colour of {t} is", "regex": _word(c)} for t, c in COLOURS.items()]
    for seq, label in ((DAYS, "day"), (MONTHS, "month")):
        items += [{"prompt": f"The {label} after {cur} is", "regex": _word(seq[(i + 1) % len(seq)])}
                  for i, cur in enumerate(seq)]
    return items


def large_eval_items(seed: int = 4, n_stories: int = LARGE_STORIES) -> list[dict]:
    rng = random.Random(seed)
    items = eval_items() + _fact_clozes()
    for _ in range(n_stories):
        items += _story_clozes(rng)
    for i, item in enumerate(items):
        item.setdefault("max_tokens", 6)
        item["id"] = f"L{i}"
    return items


def medium_eval_items(n_items: int = MEDIUM_ITEMS, seed: int = MEDIUM_SEED) -> list[dict]:
    """A sample of the large suite without replacement, kept in its order: the same items, the same ids."""
    large = large_eval_items()
    return [large[i] for i in sorted(random.Random(seed).sample(range(len(large)), n_items))]


def main() -> None:
    (HERE / "corpus.txt").write_text("\n\n".join(build(seed=1, n_stories=1400, fact_repeats=6)) + "\n")
    (HERE / "heldout.txt").write_text("\n\n".join(build(seed=2, n_stories=150, fact_repeats=0)) + "\n")
    calib = build(seed=3, n_stories=200, fact_repeats=1)
    (HERE / "calibration.txt").write_text("\n\n".join(calib) + "\n")
    with open(HERE / "eval.jsonl", "w") as fh:
        for item in eval_items():
            fh.write(json.dumps(item) + "\n")
    for name, items in (("eval_large.jsonl", large_eval_items()), ("eval_medium.jsonl", medium_eval_items())):
        with open(HERE / name, "w") as fh:
            for item in items:
                fh.write(json.dumps(item) + "\n")


if __name__ == "__main__":
    main()
