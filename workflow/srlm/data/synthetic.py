"""Seeded GSM8K-style word problems with known answers, written in every raw format the pipeline reads.

Why: the demo and the tests need data in the exact shapes of the real sources (openai/gsm8k,
camel-ai/gsm8k_distilled, the five benchmark files) without network access. No library generates
schema-faithful GSM8K look-alikes, so this is written by hand.

Sets made for different purposes (train, test, KD, each benchmark) must not look contaminated to an n-gram
check. So each purpose draws its names, items, shops, machines and jobs from its own disjoint slice of the
word lists, every template has at most 9 words between two such slots (numbers and days do not count),
and each purpose seeds its own random stream (`random.Random(f"{purpose}:{seed}")`): no 10-word (or
longer) window of one purpose's problems occurs in another's, so an n-gram decontamination with n >= 10
flags nothing between them (tests/unit/test_data_clean.py checks it).
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from typing import Callable

# The purposes the pipeline uses, each owning slice i of every word list (others hash to a slice).
PURPOSES = ["gsm8k-train", "gsm8k-test", "camel", "bench-olympiadbench", "bench-math500", "bench-minerva",
            "bench-amc23", "bench-gsm8k"]  # fmt: skip
SLICES = len(PURPOSES)

_NAMES = """Natalia:she Weng:he Betty:she Julio:he Amara:she Tobias:he Priya:she Mateo:he Ingrid:she Kofi:he
Leila:she Dmitri:he Sofia:she Hiroshi:he Chloe:she Rashid:he Mei:she Oscar:he Fatima:she Liam:he Greta:she
Yusuf:he Hannah:she Pablo:he Nadia:she Felix:he Zoe:she Arjun:he Elena:she Marcus:he Aiko:she Bruno:he
Carmen:she Desmond:he Esther:she Farid:he Gloria:she Henrik:he Isla:she Jonas:he Keiko:she Lorenzo:he
Maya:she Nikolai:he Olivia:she Pedro:he Quinn:she Ravi:he Sana:she Tariq:he Ursula:she Viktor:he Wanda:she
Xavier:he Yara:she Zane:he Beatriz:she Cyrus:he Daphne:she Emeka:he Freya:she Gustavo:he Helga:she Ivan:he"""
NAMES = [tuple(x.split(":")) for x in _NAMES.split()]
ITEMS = """apples pencils stickers marbles cupcakes notebooks seashells candles tomatoes postcards buttons
muffins bracelets comic_books tulips lemons cookies batteries soap_bars paintbrushes jars_of_jam keychains
balloons puzzles oranges erasers crayons bagels scarves mugs pinecones kites plums rulers donuts envelopes
sunflowers yo-yos pretzels magnets peaches lanterns chess_sets pillows onions teacups feathers acorns
potatoes notepads gloves pies spoons daisies bookmarks walnuts""".split()
SHOPS = """bakery bookstore florist grocery deli cafe pharmacy boutique bazaar creamery pizzeria newsstand
toyshop confectionery greenhouse tearoom""".split()
MACHINES = """printer bottling_machine robot_arm loom packing_line 3D_printer oven sewing_machine
labeling_machine press conveyor_belt kiln mixer cutter stamping_machine folding_machine""".split()
VEHICLES = "car bus bicycle truck motorbike train scooter van".split()
JOBS = """tutoring babysitting gardening tailoring catering bookkeeping lifeguarding plumbing carpentry
welding proofreading translating upholstery beekeeping ironing cooking""".split()
ITEMS, MACHINES = ([w.replace("_", " ") for w in lst] for lst in (ITEMS, MACHINES))
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

Problem = tuple[str, list[str], int]  # question, solution steps (with <<calc>> annotations), answer


@dataclass
class Vocab:
    """The slice of the word lists one purpose draws from."""

    names: list
    items: list
    shops: list
    machines: list
    vehicles: list
    jobs: list

    @classmethod
    def for_purpose(cls, purpose: str) -> Vocab:
        if purpose in PURPOSES:
            k = PURPOSES.index(purpose)
        else:
            k = int(hashlib.sha256(purpose.encode()).hexdigest(), 16) % SLICES
        return cls(*(lst[k::SLICES] for lst in (NAMES, ITEMS, SHOPS, MACHINES, VEHICLES, JOBS)))


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def step(text: str, expr: str, value: int, unit: str = "", tail: str = "") -> str:
    """One GSM8K solution line: 'text a x b = $<<a*b=v>>v tail.'"""
    shown = expr.replace("*", " x ").replace("/", " / ").replace("+", " + ").replace("-", " - ")
    return f"{text} {shown} = {unit}<<{expr}={_fmt(value)}>>{_fmt(value)}{tail}."


def _two(rng: random.Random, v: Vocab) -> tuple[tuple[str, str], tuple[str, str]]:
    a, b = rng.sample(v.names, 2)
    return a, b


def t_shopping(rng: random.Random, v: Vocab) -> Problem:
    (n, _), (i1, i2) = rng.choice(v.names), rng.sample(v.items, 2)
    a, b, p, q = rng.randint(2, 12), rng.randint(2, 9), rng.randint(2, 15), rng.randint(3, 25)
    total = a * p + b * q
    bill = rng.choice([x for x in (50, 100, 200, 500) if x > total] or [total + rng.randint(5, 60)])
    ask = rng.choice(["How much change does {n} get back?", "How much change should {n} receive?"])
    q_text = (
        f"At the {rng.choice(v.shops)}, {n} buys {a} {i1} for ${p} each and {b} {i2} for ${q} each. "
        f"{n} pays with ${bill}. " + ask.format(n=n)
    )
    steps = [
        step(f"The {i1} cost", f"{a}*{p}", a * p, "$"),
        step(f"The {i2} cost", f"{b}*{q}", b * q, "$"),
        step("Altogether that is", f"{a * p}+{b * q}", total, "$"),
        step("So the change is", f"{bill}-{total}", bill - total, "$"),
    ]
    return q_text, steps, bill - total


def t_ages(rng: random.Random, v: Vocab) -> Problem:
    (n1, _), (n2, _) = _two(rng, v)
    k, y, young = rng.randint(2, 5), rng.randint(2, 12), rng.randint(3, 15)
    later = young + y
    total = rng.random() < 0.5
    ask = f"How old are {n1} and {n2} together now?" if total else f"How old is {n1} now?"
    q_text = f"{n1} is {k} times as old as {n2}. In {y} years, {n2} will be {later} years old. {ask}"
    steps = [
        step(f"Now {n2} is", f"{later}-{y}", young, tail=" years old"),
        step(f"So {n1} is", f"{k}*{young}", k * young, tail=" years old"),
    ]
    if total:
        steps.append(step("Together they are", f"{k * young}+{young}", k * young + young))
        return q_text, steps, k * young + young
    return q_text, steps, k * young


def t_rates(rng: random.Random, v: Vocab) -> Problem:
    m, item = rng.choice(v.machines), rng.choice(v.items)
    r, h, d = rng.randint(8, 90), rng.randint(3, 12), rng.randint(2, 14)
    q_text = (
        f"A {m} makes {r} {item} an hour. The {m} runs {h} hours a day. "
        f"How many {item} does it make in {d} days?"
    )
    steps = [
        step("Each day it makes", f"{r}*{h}", r * h, tail=f" {item}"),
        step(f"In {d} days it makes", f"{r * h}*{d}", r * h * d, tail=f" {item}"),
    ]
    return q_text, steps, r * h * d


def t_fractions(rng: random.Random, v: Vocab) -> Problem:
    (n, pr), (friend, _) = _two(rng, v)
    item = rng.choice(v.items)
    num, den = rng.choice([(1, 2), (1, 3), (2, 3), (1, 4), (3, 4), (2, 5), (3, 5), (1, 6), (5, 8)])
    total = den * rng.randint(3, 30)
    given = total * num // den
    extra = rng.randint(1, total - given)
    left = total - given - extra
    q_text = (
        f"{n} collected {total} {item}. {pr.capitalize()} gave {num}/{den} of them to {friend} "
        f"and then sold {extra} at the {rng.choice(v.shops)} on {rng.choice(DAYS)}. "
        f"How many {item} does {n} have left?"
    )
    steps = [
        step(f"{n} gave away", f"{total}*{num}/{den}", given, tail=f" {item}"),
        step("After selling some, the number left is", f"{total}-{given}-{extra}", left),
    ]
    return q_text, steps, left


def t_discount(rng: random.Random, v: Vocab) -> Problem:
    (n, pr), item = rng.choice(v.names), rng.choice(v.items)
    price, pct, c = 20 * rng.randint(1, 30), rng.choice([5, 10, 15, 20, 25, 30, 40, 50]), rng.randint(2, 9)
    off = price * pct // 100
    q_text = (
        f"A box of {item} usually costs ${price}. This week the {rng.choice(v.shops)} takes {pct}% off. "
        f"{n} buys {c} boxes of {item}. How much does {n} pay in total?"
    )
    steps = [
        step("The discount per box is", f"{price}*{pct}/100", off, "$"),
        step("Each box then costs", f"{price}-{off}", price - off, "$"),
        step(f"For {c} boxes {pr} pays", f"{price - off}*{c}", (price - off) * c, "$"),
    ]
    return q_text, steps, (price - off) * c


def t_wages(rng: random.Random, v: Vocab) -> Problem:
    (n, pr), job, shop = rng.choice(v.names), rng.choice(v.jobs), rng.choice(v.shops)
    w, h, h2, weeks = rng.randint(9, 40), rng.randint(2, 8), rng.randint(1, 6), rng.randint(2, 6)
    week = 5 * h * w + h2 * w
    q_text = (
        f"{n} earns ${w} an hour. {pr.capitalize()} does {h} hours of {job} each weekday and {h2} hours "
        f"at the {shop} on Saturdays. How much does {n} earn in {weeks} weeks?"
    )
    steps = [
        step("On weekdays that is", f"5*{h}*{w}", 5 * h * w, "$", " a week"),
        step("On Saturday", f"{h2}*{w}", h2 * w, "$"),
        step("One week brings", f"{5 * h * w}+{h2 * w}", week, "$"),
        step(f"In {weeks} weeks", f"{week}*{weeks}", week * weeks, "$"),
    ]
    return q_text, steps, week * weeks


def t_distance(rng: random.Random, v: Vocab) -> Problem:
    (n, _), veh, (place, place2) = rng.choice(v.names), rng.choice(v.vehicles), rng.sample(v.shops, 2)
    s1, t1, t2 = rng.randint(20, 70), rng.randint(1, 6), rng.randint(1, 5)
    s2 = rng.randint(10, s1 - 5)
    q_text = (
        f"{n} rides a {veh} at {s1} mph for {t1} hours to the {place}, then at {s2} mph "
        f"for {t2} hours to the {place2}. How many miles did {n} ride?"
    )
    steps = [
        step("First part:", f"{s1}*{t1}", s1 * t1, tail=" miles"),
        step("Second part:", f"{s2}*{t2}", s2 * t2, tail=" miles"),
        step("Total:", f"{s1 * t1}+{s2 * t2}", s1 * t1 + s2 * t2, tail=" miles"),
    ]
    return q_text, steps, s1 * t1 + s2 * t2


def t_inventory(rng: random.Random, v: Vocab) -> Problem:
    shop, item = rng.choice(v.shops), rng.choice(v.items)
    a, b = rng.randint(5, 60), rng.randint(10, 400)
    start = 3 * a + rng.randint(10, 900)
    d1, d2, d3 = rng.sample(DAYS, 3)
    end = start - 3 * a + b
    q_text = (
        f"A {shop} had {start} {item} in stock. It sold {a} {item} on {d1} and twice as many {item} on {d2}. "
        f"On {d3} a delivery of {b} more {item} arrived. How many {item} does the {shop} have now?"
    )
    steps = [
        step(f"On {d2} it sold", f"2*{a}", 2 * a),
        step("Sold in total:", f"{a}+{2 * a}", 3 * a),
        step("After the sales and the delivery:", f"{start}-{3 * a}+{b}", end),
    ]
    return q_text, steps, end


def t_sharing(rng: random.Random, v: Vocab) -> Problem:
    (n, _), (n2, _) = _two(rng, v)
    item, k, each, keep = rng.choice(v.items), rng.randint(3, 9), rng.randint(4, 40), rng.randint(1, 3)
    total = k * each
    q_text = (
        f"{n} and {k - 1} friends split {total} {item} equally. Each of them keeps {keep} {item} and gives "
        f"the rest to {n2}. How many {item} does {n2} get altogether?"
    )
    steps = [
        step("Each person gets", f"{total}/{k}", each),
        step("Each gives away", f"{each}-{keep}", each - keep),
        step(f"So {n2} gets", f"{each - keep}*{k}", (each - keep) * k),
    ]
    return q_text, steps, (each - keep) * k


TEMPLATES: list[Callable[[random.Random, Vocab], Problem]] = [
    t_shopping, t_ages, t_rates, t_fractions, t_discount, t_wages, t_distance, t_inventory, t_sharing,
]  # fmt: skip


def e_count(rng: random.Random, v: Vocab) -> Problem:
    """Read one single-digit count back: a copy of the only digit of the problem, found by attention, which the
    demo's one-layer tiny model learns in 150-300 steps; the two-layer one did not learn in the demo's budget to
    read one of two counts back, to copy two-digit counts, or to add two digits (measured 2026-12-07, issue 31;
    docs/performance.md "The demo"). Shop and day only vary the wording, so that thousands of distinct problems
    exist. The solution names no name or item, so the model copies the count alone."""
    (n, _), item, shop, day = rng.choice(v.names), rng.choice(v.items), rng.choice(v.shops), rng.choice(DAYS)
    a = rng.randint(1, 9)
    q_text = f"On {day}, {n} bought {a} {item} at the {shop}. How many {item} did {n} buy?"
    return q_text, [f"The count is {a}."], a


# level "easy": what a tiny model can learn on a CPU in the demo's budget (config/demo.yaml), so that trained rows
# measurably beat untrained ones; "gsm8k": the multi-step problems above, GSM8K's shape and difficulty. The easy
# level's purposes share the word lists: a tiny model trained on one slice's names and items did not read counts
# back in problems made of another slice's (20% right against 100% on its training rows, 2026-12-07), so only its
# problems' combinations are new to it; the rare question equal to another purpose's is what decontamination drops.
LEVELS: dict[str, list[Callable[[random.Random, Vocab], Problem]]] = {"gsm8k": TEMPLATES, "easy": [e_count]}


def problems(n: int, seed: int, purpose: str, level: str = "gsm8k") -> list[Problem]:
    """n problems for one purpose; distinct questions, same list for the same (n, seed, purpose, level)."""
    if level not in LEVELS:
        raise ValueError(f"synthetic level {level!r}: one of {sorted(LEVELS)}")
    rng, vocab = random.Random(f"{purpose}:{seed}"), Vocab.for_purpose(purpose)
    if level == "easy":  # every purpose draws from the whole word lists (see LEVELS)
        vocab = Vocab(NAMES, ITEMS, SHOPS, MACHINES, VEHICLES, JOBS)
    out, seen = [], set()
    while len(out) < n:
        q, steps, ans = rng.choice(LEVELS[level])(rng, vocab)
        if q not in seen and ans >= 0:
            seen.add(q)
            out.append((q, steps, ans))
    return out


def _final(ans: int, rng: random.Random) -> str:
    """GSM8K sometimes writes thousands separators after ####; keep some so parsers must handle them."""
    return f"{ans:,}" if ans >= 1000 and rng.random() < 0.5 else str(ans)


def gsm8k_rows(n: int, seed: int, purpose: str = "gsm8k-train", level: str = "gsm8k") -> list[dict]:
    """openai/gsm8k rows: {question, answer: 'steps with <<calc>>\\n#### N'}."""
    rng = random.Random(f"{purpose}:{seed}:format")
    return [
        {"question": q, "answer": "\n".join(steps) + f"\n#### {_final(a, rng)}"}
        for q, steps, a in problems(n, seed, purpose, level)
    ]


def _plain(steps: list[str]) -> str:
    return "\n".join(re.sub(r"<<[^>]*>>", "", s) for s in steps)


def camel_rows(
    n: int, seed: int, wrong_rate: float = 0.15, broken_rate: float = 0.05, level: str = "gsm8k"
) -> list[dict]:
    """camel-ai/gsm8k_distilled rows; about wrong_rate traces box a wrong answer, broken_rate are unparseable
    (no closing </think>, or no \\boxed{})."""
    rng = random.Random(f"camel:{seed}:traces")
    rows = []
    for q, steps, a in problems(n, seed, "camel", level):
        work = _plain(steps)
        roll = rng.random()
        boxed = a + rng.randint(1, 9) * rng.choice([-1, 1]) if roll < wrong_rate else a
        think = f"<think>\nOkay, let me work through this step by step.\n{work}\n"
        think += f"So the answer is {boxed}.\n</think>"
        tail = f"\n\n{work.splitlines()[-1]}\n\nThe final answer is \\boxed{{{boxed}}}."
        if wrong_rate <= roll < wrong_rate + broken_rate:
            if rng.random() < 0.5:
                think = think.replace("</think>", "")
            else:
                tail = f"\n\n{work.splitlines()[-1]}\n\nThe final answer is {boxed}."
        rows.append(
            {
                "problem": q,
                "reasoning_solution": think + tail,
                "groud_truth_solution": work + f"\n\\boxed{{{a}}}",
                "boxed_answer_success": boxed == a and "\\boxed" in tail and "</think>" in think,
            }
        )
    return rows


def benchmark_rows(fmt: str, n: int, seed: int, level: str = "gsm8k") -> list[dict]:
    """n rows in the raw schema of one benchmark file (formats as in shared/data/MANIFEST.md)."""
    if fmt == "gsm8k":
        return gsm8k_rows(n, seed, purpose="bench-gsm8k", level=level)
    if fmt not in ("olympiadbench", "math500", "minerva", "amc23"):
        raise ValueError(f"unknown benchmark format {fmt!r} (olympiadbench|math500|minerva|amc23|gsm8k)")
    rows = []
    for i, (q, steps, a) in enumerate(problems(n, seed, f"bench-{fmt}", level)):
        sol = _plain(steps)
        if fmt == "olympiadbench":
            rows.append({"id": 5000 + i, "subfield": "Algebra", "context": None, "question": q,
                         "solution": [sol], "final_answer": [f"${a}$"], "is_multiple_answer": False,
                         "unit": None, "answer_type": "Numerical", "error": None})  # fmt: skip
        elif fmt == "math500":
            rows.append({"problem": q, "solution": f"{sol}\nThe answer is $\\boxed{{{a}}}$.",
                         "answer": str(a), "subject": "Prealgebra", "level": 1 + i % 5,
                         "unique_id": f"synthetic/prealgebra/{i}.json"})  # fmt: skip
        elif fmt == "minerva":
            rows.append({"problem": q, "solution": f"{sol}\nTherefore the result is $\\boxed{{{a}}}$.",
                         "type": "Synthetic arithmetic", "idx": i})  # fmt: skip
        else:
            rows.append({"id": i, "problem": q, "answer": float(a), "url": "", "question": q})
    return rows
