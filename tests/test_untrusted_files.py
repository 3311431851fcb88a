"""Untrusted model files (issue 9, part 2): crafted, truncated and mutated files always give a
ValueError naming the file (never KeyError/TypeError/AttributeError, never a call into numpy.random
by name, never an allocation the file's real content does not back), and the CLI prints one line."""

from __future__ import annotations

import copy
import io
import json
import random
import tracemalloc
import zipfile

import numpy as np
import pytest

import fastnet as fn
from fastnet import layers as L
from fastnet.cli import main


def _model():
    fn.seed(0)
    m = fn.Sequential(
        [
            L.Conv2D(1, 2, 3),
            L.BatchNorm2d(2),
            L.ReLU(),
            L.Flatten(),
            L.Dropout(0.25),
            L.Dense(2 * 4 * 4, 3),
        ]
    )
    m.compile(optimizer="adam", loss="softmax_cross_entropy", metrics=["accuracy"])
    x = np.random.default_rng(0).random((8, 1, 6, 6)).astype(np.float32)
    m.train_on_batch(x, np.arange(8) % 3)
    return m


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = tmp_path_factory.mktemp("untrusted") / "good.npz"
    _model().save(path)
    return path


def _arrays(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _with_config(path, out, edit):
    arrays = _arrays(path)
    cfg = json.loads(str(arrays["config"][()]))
    edit(cfg)
    arrays["config"] = np.array(json.dumps(cfg))
    np.savez(out, **arrays)
    return out


def _outcome(path) -> str:
    """'ok' or 'ValueError'; any other exception type fails the test."""
    try:
        fn.load(path)
    except ValueError as e:
        assert str(path) in str(e), str(e)  # names the file
        return "ValueError"
    return "ok"


def test_good_file_loads(good):
    assert _outcome(good) == "ok"


def test_truncated_at_random_offsets(good, tmp_path):
    data = good.read_bytes()
    rng = random.Random(0)
    offsets = sorted({0, 1, 4, 30, len(data) - 1, len(data) - 22, *(rng.randrange(len(data)) for _ in range(60))})
    for n in offsets:
        p = tmp_path / f"t{n}.npz"
        p.write_bytes(data[:n])
        assert _outcome(p) == "ValueError", n


def test_flipped_bytes(good, tmp_path):
    data = good.read_bytes()
    rng = random.Random(1)
    outcomes = set()
    for k in range(150):
        b = bytearray(data)
        for _ in range(rng.choice((1, 1, 3))):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        p = tmp_path / f"f{k}.npz"
        p.write_bytes(bytes(b))
        outcomes.add(_outcome(p))  # a flip in a timestamp may be harmless; anything else is a ValueError
    assert "ValueError" in outcomes


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


WRONG = [None, "x", -1, 2**70, 1.5, [], {}, True, [1, 2, 3], {"a": 1}, "Dense", 10**6]


def test_wrong_types_anywhere_in_the_config(good, tmp_path):
    cfg0 = json.loads(str(_arrays(good)["config"][()]))
    paths = [p for p in _paths(cfg0) if p]
    rng = random.Random(2)
    cases = [(p, w) for p in paths for w in WRONG]
    rng.shuffle(cases)
    tried = 0
    for path, wrong in cases[:400]:

        def edit(cfg, path=path, wrong=wrong):
            node = cfg
            for k in path[:-1]:
                node = node[k]
            node[path[-1]] = copy.deepcopy(wrong)

        p = _with_config(good, tmp_path / "w.npz", edit)
        _outcome(p)
        tried += 1
    assert tried == min(400, len(cases))
    for bad in ([], "text", 3, None):  # the whole config of the wrong type
        arrays = _arrays(good)
        arrays["config"] = np.array(json.dumps(bad))
        np.savez(tmp_path / "c.npz", **arrays)
        assert _outcome(tmp_path / "c.npz") == "ValueError"


def test_unknown_layer_and_private_base_class(good, tmp_path):
    for name in ("Transformer", "_BatchNorm", "__import__", 7):
        p = _with_config(good, tmp_path / "u.npz", lambda c, n=name: c["layers"][0].update({"class": n}))
        with pytest.raises(ValueError, match=r"layers\[0\]\.class: unknown layer class"):
            fn.load(p)


def test_generator_state_never_names_a_numpy_function(good, tmp_path, monkeypatch):
    called = []
    monkeypatch.setattr(np.random, "seed", lambda *a: called.append(a))
    for name in ("seed", "default_rng", "RandomState", "__class__"):

        def edit(c, n=name):
            c["layers"][4]["generators"]["rng"]["bit_generator"] = n

        p = _with_config(good, tmp_path / "g.npz", edit)
        with pytest.raises(ValueError, match=r"layers\[4\]\.generators\.\w+\.bit_generator must be one of"):
            fn.load(p)
    assert not called
    p = _with_config(
        good,
        tmp_path / "g2.npz",
        lambda c: c["layers"][4]["generators"].update(forward=dict(c["layers"][4]["generators"]["rng"])),
    )
    with pytest.raises(ValueError, match="has no random generator 'forward'"):
        fn.load(p)


def test_generator_attribute_name_is_real(good):
    cfg = json.loads(str(_arrays(good)["config"][()]))
    assert list(cfg["layers"][4]["generators"]) == ["rng"]  # what the tests above mutate


def test_huge_declared_dense_allocates_nothing(good, tmp_path):
    p = _with_config(
        good, tmp_path / "h.npz", lambda c: c["layers"][5]["config"].update(in_features=20_000, out_features=20_000)
    )
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"layers\[5\] \(Dense\) config declares weight of shape \(20000, 20000\)"):
            fn.load(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 << 20  # the 1.6 GB weight was never allocated
    p = _with_config(
        good, tmp_path / "t.npz", lambda c: c["layers"][5]["config"].update(in_features=10**7, out_features=10**7)
    )
    with pytest.raises(ValueError, match="parameter elements, more than the limit"):
        fn.load(p)


def test_huge_unused_compressed_member_is_not_read(good, tmp_path):
    p = tmp_path / "bomb.npz"
    p.write_bytes(good.read_bytes())
    with zipfile.ZipFile(p, "a", compression=zipfile.ZIP_DEFLATED) as z, z.open("junk.npy", "w", force_zip64=True) as f:
        f.write(np.lib.format.header_data_from_array_1_0(np.zeros(1)) and b"")
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (32 << 20,)})
        f.write(buf.getvalue())
        chunk = bytes(1 << 20)
        for _ in range(256):
            f.write(chunk)
    assert p.stat().st_size < 2 << 20  # 256 MiB of zeros in well under 2 MB
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="unexpected member 'junk.npy'"):
            fn.load(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 << 20


def test_member_sizes_are_capped_from_the_zip_directory(good, monkeypatch):
    monkeypatch.setenv("FASTNET_MAX_MODEL_BYTES", "1000")
    with pytest.raises(ValueError, match="more than the limit of 1000"):
        fn.load(good)


def test_object_and_mismatched_headers(good, tmp_path):
    arrays = _arrays(good)
    arrays["model/5.bias"] = np.array(["a", "b", "c"])
    np.savez(tmp_path / "s.npz", **arrays)
    with pytest.raises(ValueError, match="model/5.bias.*expected numbers"):
        fn.load(tmp_path / "s.npz")
    arrays = _arrays(good)
    arrays["optimizer/m/5.weight"] = np.zeros((2, 2), np.float32)
    np.savez(tmp_path / "o.npz", **arrays)
    with pytest.raises(ValueError, match="optimizer/m/5.weight"):
        fn.load(tmp_path / "o.npz")


def test_plain_text_file_has_no_pickle_advice(tmp_path):
    p = tmp_path / "notes.npz"
    p.write_text("just some notes\n")
    with pytest.raises(ValueError, match="is not a fastnet model file") as e:
        fn.load(p)
    assert "pickle" not in str(e.value)


@pytest.mark.parametrize("command", ["summary", "evaluate", "predict"])
def test_cli_prints_one_line_for_any_malformed_file(good, tmp_path, capsys, command, monkeypatch):
    monkeypatch.setenv("FASTNET_OFFLINE", "1")
    monkeypatch.delenv("FASTNET_DEBUG", raising=False)
    data = good.read_bytes()
    files = {"text": b"hello\n", "trunc": data[: len(data) // 2], "empty": b""}
    for name, content in files.items():
        (tmp_path / f"{name}.npz").write_bytes(content)
    _with_config(good, tmp_path / "layer.npz", lambda c: c["layers"][0].update({"class": "Nope"}))
    _with_config(good, tmp_path / "types.npz", lambda c: c.update(layers={"a": 1}))
    for p in sorted(tmp_path.glob("*.npz")):
        argv = [command, str(p)] + (["img.png"] if command == "predict" else [])
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (p, err)
        assert "pickle" not in err


def _graph_file(path):
    fn.seed(0)
    bx = fn.Input((6,))
    block = fn.Model(bx, L.Dense(6, 6)(bx), name="block")
    x = fn.Input((6,))
    m = fn.Model(x, L.Dense(6, 3)(L.Dropout(0.2)(block(x))), name="graph")
    m.compile(optimizer="adam", loss="softmax_cross_entropy")
    m.save(path)
    return path


def test_graph_and_nested_model_files_are_checked_too(tmp_path):
    good = _graph_file(tmp_path / "g.npz")
    assert _outcome(good) == "ok"
    cfg = json.loads(str(_arrays(good)["config"][()]))
    nested = next(e for e in cfg["graph"]["layers"] if e["class"] == "Model")

    def huge(c):
        inner = next(e for e in c["graph"]["layers"] if e["class"] == "Model")
        inner["config"]["layers"][0]["config"].update(in_features=20_000, out_features=20_000)

    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"declares \d+ parameter elements but the file stores only"):
            fn.load(_with_config(good, tmp_path / "h.npz", huge))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 << 20
    assert nested["config"]["layers"][0]["class"] == "Dense"  # what huge() edits

    def unknown(c):
        next(e for e in c["graph"]["layers"] if e["class"] == "Model")["config"]["layers"][0]["class"] = "Nope"

    with pytest.raises(ValueError, match=r"graph\.layers\[\d\]\.config\.layers\[0\]\.class: unknown layer class"):
        fn.load(_with_config(good, tmp_path / "u.npz", unknown))
    paths = [p for p in _paths(cfg) if p]
    rng = random.Random(3)
    for path in rng.sample(paths, min(150, len(paths))):
        for wrong in (None, "x", -1, [], {}):

            def edit(c, path=path, wrong=wrong):
                node = c
                for k in path[:-1]:
                    node = node[k]
                node[path[-1]] = copy.deepcopy(wrong)

            _outcome(_with_config(good, tmp_path / "w.npz", edit))
