"""Math problems generated from a seed: the same seed and split give the same problem anywhere.

`random.Random` seeded with a string hashes it with SHA-512, independent of PYTHONHASHSEED,
process and machine, so a seed names one problem for good.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction

SPLITS = ("train", "test")
KINDS = ("arithmetic", "fractions", "word")
_NAMES = ("Maya", "Omar", "Lena", "Tariq", "Ines", "Kofi", "Priya", "Jonas")
_ITEMS = ("apples", "marbles", "stickers", "pencils", "cards", "shells")


@dataclass(frozen=True, slots=True)
class MathProblem:
    seed: int
    split: str
    kind: str
    text: str
    answer: Fraction

    @property
    def id(self) -> str:
        return f"math-{self.split}-{self.seed}"


def generate_problem(seed: int, split: str = "train") -> MathProblem:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    rng = random.Random(f"synth-ai-math:{split}:{seed}")
    kind = rng.choice(KINDS)
    text, answer = {"arithmetic": _arithmetic, "fractions": _fractions, "word": _word}[kind](rng)
    return MathProblem(seed=seed, split=split, kind=kind, text=text, answer=answer)


def _arithmetic(rng: random.Random) -> tuple[str, Fraction]:
    a, b, c = rng.randint(2, 99), rng.randint(2, 99), rng.randint(2, 30)
    form = rng.randrange(4)
    if form == 0:
        return f"Compute {a} + {b} * {c}.", Fraction(a + b * c)
    if form == 1:
        return f"Compute ({a} - {b}) * {c}.", Fraction((a - b) * c)
    if form == 2:
        return f"Compute {a} * {c} - {b}.", Fraction(a * c - b)
    return f"Compute {a * c} / {c} + {b}.", Fraction(a + b)


def _fractions(rng: random.Random) -> tuple[str, Fraction]:
    x = Fraction(rng.randint(1, 9), rng.randint(2, 12))
    y = Fraction(rng.randint(1, 9), rng.randint(2, 12))
    op = rng.choice("+-*")
    answer = {"+": x + y, "-": x - y, "*": x * y}[op]
    return (
        f"Compute {x.numerator}/{x.denominator} {op} {y.numerator}/{y.denominator}. "
        "Give the answer as a fraction in lowest terms.",
        answer,
    )


def _word(rng: random.Random) -> tuple[str, Fraction]:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    form = rng.randrange(4)
    if form == 0:
        a, b = rng.randint(5, 60), rng.randint(2, 40)
        c = rng.randint(1, a + b)
        return (
            f"{name} has {a} {item}. {name} buys {b} more and then gives away {c}. "
            f"How many {item} does {name} have now?",
            Fraction(a + b - c),
        )
    if form == 1:
        a, b = rng.randint(2, 15), rng.randint(2, 24)
        return (
            f"{name} buys {a} packs of {item} with {b} in each pack. "
            f"How many {item} does {name} have in total?",
            Fraction(a * b),
        )
    if form == 2:
        friends, each = rng.randint(2, 12), rng.randint(2, 20)
        return (
            f"{name} has {friends * each} {item} and shares them equally among {friends} "
            f"friends. How many {item} does each friend get?",
            Fraction(each),
        )
    per_box, boxes = rng.randint(3, 24), rng.randint(2, 12)
    used = rng.randint(1, per_box * boxes)
    return (
        f"A box holds {per_box} {item}. {name} fills {boxes} boxes and then uses {used} {item}. "
        f"How many {item} are left?",
        Fraction(per_box * boxes - used),
    )
