"""GSM8K answer extraction on completions in the shapes models really produce."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "gates_fixtures"))
import support  # noqa: E402,F401  (puts the repo root on sys.path)

from scripts.gates import answers  # noqa: E402
from scripts.gates.gsm8k import BUILTIN_FEWSHOT, build_prompt, parse_jsonl  # noqa: E402

D = Decimal
# (completion, strict, flexible)
CASES = [
    # the few-shot format, with calculator annotations
    (
        "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nSo 48+24 = <<48+24=72>>72.\n#### 72",
        D(72),
        D(72),
    ),
    ("He pays 3 * $1,250 = $<<3*1250=3750>>3,750.\n#### 3,750", D(3750), D(3750)),
    ("#### $1,200.", D(1200), D(1200)),
    ("The total is 18 dollars.\n#### 18.", D(18), D(18)),
    ("She loses 5 - 8 = <<5-8=-3>>-3 points.\n#### -3", D(-3), D(-3)),
    ("#### \u22127", D(-7), D(-7)),  # Unicode minus
    ("The balance is -$1,000.50.", None, D("-1000.50")),
    ("It takes 0.5 hours.\n#### 0.50", D("0.5"), D("0.5")),
    ("So the answer is 12:30 pm, i.e. 30 minutes", None, D(30)),
    ("The answer is \\boxed{624}.", None, D(624)),
    ("**Answer: $18**", None, D(18)),
    ("Between 2010-2015 sales rose by 40", None, D(40)),
    ("2010-2015", None, D(2015)),  # a range dash is not a minus sign
    ("She picks 2,3,4 apples", None, D(4)),  # a list, not thousands
    ("#### 1,000,000 dollars", D(1000000), D(1000000)),
    ("It was 1000,000 in the end", None, D(1000000)),  # sloppy thousands
    ("The answer is 5.\n#### 6", D(6), D(6)),  # strict reads the marker, flexible the last
    ("#### 5\nThen 7 more remain", D(5), D(7)),
    ("#### 42\n\nQuestion: Tom has 9 cats. How many?\nAnswer: 9", D(42), D(42)),  # ran on
    ("I don't know.", None, None),
    ("", None, None),
    ("The profit is (-3) dollars", None, D(-3)),
    ("3 apples + 4 apples =7 apples", None, D(7)),
]


@pytest.mark.parametrize("completion,strict,flexible", CASES)
def test_extraction(completion: str, strict: Decimal | None, flexible: Decimal | None) -> None:
    assert answers.extract_strict(completion) == strict
    assert answers.extract_flexible(completion) == flexible


def test_same_compares_values_not_strings() -> None:
    assert answers.same(D("18.00"), D(18))
    assert not answers.same(None, D(0))
    assert not answers.same(D(-18), D(18))


def test_gold_answer_and_bad_row() -> None:
    assert answers.gold_answer("blah\n#### 1,234") == D(1234)
    with pytest.raises(ValueError, match="#### N"):
        answers.gold_answer("no marker here 5")


def test_builtin_fewshot_is_five_train_rows_and_prompt_shape() -> None:
    rows = parse_jsonl(BUILTIN_FEWSHOT.read_bytes(), "builtin")
    assert len(rows) == 5
    assert [r["gold"] for r in rows] == [D(72), D(10), D(5), D(42), D(624)]
    prompt = build_prompt(rows[:2], "What is 2+2?")
    assert prompt.count("Question: ") == 3
    assert prompt.endswith("Question: What is 2+2?\nAnswer:")
    assert "#### 72\n\nQuestion: Weng" in prompt
