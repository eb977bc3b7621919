"""The text files shipped in quantize/data/ and readers for user-supplied calibration files."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from quantize.errors import QuantizeError

DATA_DIR = Path(__file__).parent / "data"


@dataclass(frozen=True)
class EvalItem:
    prompt: str
    answer: str


def _paragraphs(path: Path) -> list[str]:
    return [p.strip() for p in path.read_text(encoding="utf-8").split("\n\n") if p.strip()]


def training_docs() -> list[str]:
    return _paragraphs(DATA_DIR / "corpus.txt")


def heldout_texts() -> list[str]:
    return _paragraphs(DATA_DIR / "heldout.txt")


def default_calibration_path() -> Path:
    return DATA_DIR / "calibration.txt"


def load_texts(path: Path) -> list[str]:
    """Calibration texts: a .txt file (paragraphs split by blank lines), JSONL with a "text"
    field, or a table (.csv, .parquet) with a "text" column."""
    path = Path(path)
    if not path.is_file():
        raise QuantizeError(f"calibration data not found: {path}", cause="calibration")
    if path.suffix == ".jsonl":
        texts = [_jsonl_text(line, path, n) for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if line.strip()]
    elif path.suffix in (".csv", ".parquet"):
        texts = _table_texts(path)
    else:
        texts = _paragraphs(path)
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise QuantizeError(f"calibration data is empty: {path}", cause="calibration")
    return texts


def _table_texts(path: Path) -> list[str]:
    import pandas as pd

    try:
        frame = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    except Exception as exc:
        raise QuantizeError(f"calibration table {path} cannot be read: {exc}", cause="calibration") from exc
    if "text" not in frame.columns:
        columns = ", ".join(map(str, frame.columns))
        raise QuantizeError(f"calibration table {path} has no \"text\" column (columns: {columns})",
                            cause="calibration")
    return [t for t in frame["text"].tolist() if isinstance(t, str)]


def _jsonl_text(line: str, path: Path, lineno: int) -> str:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise QuantizeError(f"calibration file {path} line {lineno} is not JSON: {exc.msg}",
                            cause="calibration") from exc
    if isinstance(row, str):
        return row
    if isinstance(row, dict) and isinstance(row.get("text"), str):
        return row["text"]
    raise QuantizeError(f"calibration file {path} line {lineno}: expected a string or an object with \"text\"",
                        cause="calibration")


def load_eval_set(path: Path | None = None) -> list[EvalItem]:
    """The evaluation JSONL: one {"prompt": ..., "answer": ...} per line."""
    path = Path(path) if path else DATA_DIR / "eval.jsonl"
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not (isinstance(row, dict) and isinstance(row.get("prompt"), str) and isinstance(row.get("answer"), str)):
            raise ValueError(f"{path} line {n}: expected {{\"prompt\": str, \"answer\": str}}")
        items.append(EvalItem(row["prompt"], row["answer"]))
    if not items:
        raise ValueError(f"evaluation set {path} is empty")
    return items
