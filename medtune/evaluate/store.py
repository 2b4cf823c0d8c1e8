"""eval/generations.jsonl: one flushed line per finished answer, so a killed evaluation resumes where it stopped."""
from __future__ import annotations

import json
import os
from pathlib import Path


def _key(model: str, set_name: str, item_id: str) -> tuple[str, str, str]:
    return (model, set_name, str(item_id))


class GenerationStore:
    """Append-only record of generations keyed by (model label, item set, item id).

    A line counts only for the fingerprint it was made with (weights, prompt tokens, settings); a
    changed prompt or model makes a fresh line, and the newest line for a key wins.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._records: dict[tuple[str, str, str], dict] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        raw = self.path.read_bytes()
        complete = raw[: raw.rfind(b"\n") + 1]
        if len(complete) != len(raw):
            # A kill mid-write leaves a partial last line; cut it so the next append starts clean.
            with self.path.open("r+b") as fh:
                fh.truncate(len(complete))
        for line in complete.decode("utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                self._records[_key(record["model"], record["set"], record["id"])] = record

    def get(self, model: str, set_name: str, item_id: str, fingerprint: str) -> dict | None:
        record = self._records.get(_key(model, set_name, item_id))
        return record if record is not None and record.get("fingerprint") == fingerprint else None

    def append(self, records: list[dict]) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            for record in records:
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        for record in records:
            self._records[_key(record["model"], record["set"], record["id"])] = record

    def records(self, model: str, set_name: str) -> dict[str, dict]:
        return {key[2]: rec for key, rec in self._records.items() if key[0] == model and key[1] == set_name}

    def records_of_model(self, model: str) -> dict[tuple[str, str], dict]:
        """Every newest line of one model label, keyed by (item set, item id)."""
        return {(key[1], key[2]): rec for key, rec in self._records.items() if key[0] == model}
