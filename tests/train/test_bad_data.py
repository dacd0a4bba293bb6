"""Training on a damaged data set: mostly missing videos stop the run in one line (``--max-missing``), and a
read-only labels folder without its class dictionary trains with the dictionary kept in memory."""
from __future__ import annotations

import errno
import logging
import shutil
from pathlib import Path

from engine_helpers import TINY, dataset_for, tiny_args, tiny_network

from data.catalog import labels as labels_module
from data.prep.synthetic import SYNTHETIC_SPEC
from train.engine.run import main


def _copy_of_the_data(tmp_path: Path) -> Path:
    """A private copy of the tiny synthetic set (``<root>/data/<folder>``, ``<root>/labels``); returns --dataset."""
    src = dataset_for(SYNTHETIC_SPEC)
    root = tmp_path / "root"
    shutil.copytree(src.parents[1], root)
    return root / "data" / src.name


def _train(dataset: Path, model_dir: Path, *extra: str) -> int:
    with tiny_network():
        return main(SYNTHETIC_SPEC, tiny_args(dataset, model_dir, "--end-epoch", "1", *extra))


def test_a_mostly_missing_data_set_stops_in_one_line(tmp_path, capsys):
    dataset = _copy_of_the_data(tmp_path)
    train_csv = dataset.parents[1] / "labels" / SYNTHETIC_SPEC.train_csv
    rows = train_csv.read_text().splitlines()
    label = rows[1].split(",")[0]
    train_csv.write_text("\n".join(rows + [f"{label},gone{i},0.0,2.5,train" for i in range(400)]) + "\n")
    assert _train(dataset, tmp_path / "runs") == 1
    err = capsys.readouterr().err
    errors = [ln for ln in err.splitlines() if " ERROR " in ln or ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err[-2000:]
    assert "400 of 408 videos (98.0%) not found" in errors[0] and "--max-missing 5%" in errors[0]
    assert not list((tmp_path / "runs").rglob("*.pth"))
    assert _train(dataset, tmp_path / "runs", "--max-missing", "100", "--overwrite", "True") == 0  # accepted


def test_read_only_labels_without_dictionary_train_with_it_in_memory(tmp_path, monkeypatch, caplog):
    dataset = _copy_of_the_data(tmp_path)
    labels = dataset.parents[1] / "labels"
    for path in labels.glob("*dictionary.json"):
        path.unlink()

    def read_only(path, dictionary):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(labels_module, "write_dictionary", read_only)
    with caplog.at_level(logging.WARNING):
        assert _train(dataset, tmp_path / "runs") == 0
    said = [r.getMessage() for r in caplog.records if "cannot write the class dictionary" in r.getMessage()]
    assert len(said) == 1 and "Read-only file system" in said[0]
    assert (tmp_path / "runs" / f"{TINY}_gates_False" / f"{TINY}_ep-0001.pth").is_file()
