"""verify_bundle / load_bundle: tampering, unsafe paths and links, archives, signatures, trust."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nbtoolkit.errors import BundleIntegrityError, InputError


def _cancer() -> tuple[Any, Any]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    return data.data, data.target


X, Y = _cancer()


def _export(name: str, model: Any, *, sample: Any, serializer: str = "skops", archive: bool = False) -> Path:
    import nbtoolkit as nbtk

    with pytest.warns(UserWarning) if serializer != "skops" else _nullcontext():
        with nbtk.start_run(name, success="accuracy >= 0.5", scope="tests") as run:
            nbtk.log(accuracy=float(model.score(X if hasattr(sample, "columns") else X.to_numpy(), Y)))
            nbtk.log_model(model, sample_input=sample, serializer=serializer)
    nbtk.approve(run.run_id, by="rita")
    return nbtk.export_bundle(run.run_id, model=name, out_dir="bundles", archive=archive).path


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Bundles exported once per module: skops tree (folder + archive), ndarray, pickle, untrusted function."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer
    from sklearn.tree import DecisionTreeClassifier

    from nbtoolkit import tracking

    root = tmp_path_factory.mktemp("export-verify") / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "0"\n', encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("NBTOOLKIT_STORE", str(root / ".nbtoolkit"))
        for var in ("NBTOOLKIT_RUN_ID", "NBTOOLKIT_PARAMS", "NBTOOLKIT_NOTEBOOK"):
            mp.delenv(var, raising=False)
        tracking._stack.clear()
        tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, Y)
        arr_tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X.to_numpy(), Y)
        func = make_pipeline(FunctionTransformer(np.nan_to_num), DecisionTreeClassifier(max_depth=2, random_state=0)).fit(X, Y)
        bundles = {
            "tree": _export("tree", tree, sample=X[:5]),
            "archive": _export("tree-archive", tree, sample=X[:5], archive=True),
            "ndarray": _export("tree-array", arr_tree, sample=X.to_numpy()[:5]),
            "pickle": _export("tree-pickle", tree, sample=X[:5], serializer="pickle"),
            "function": _export("tree-func", func, sample=X[:5]),
        }
        yield bundles


@pytest.fixture
def bundle(pristine: dict[str, Path], tmp_path: Path) -> Path:
    """A private copy of the skops bundle folder, free to tamper with."""
    return Path(shutil.copytree(pristine["tree"], tmp_path / "tree-0.1.0"))


def problems_of(path: Path) -> list[str]:
    from nbtoolkit import verify_bundle

    with pytest.raises(BundleIntegrityError) as info:
        verify_bundle(path)
    from nbtoolkit import load_bundle

    with pytest.raises(BundleIntegrityError):  # load refuses before touching the model
        load_bundle(path, trust=True)
    return info.value.problems


def rewrite_manifest(bundle: Path, fn: Any) -> None:
    path = bundle / "MANIFEST.json"
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def test_pristine_bundles_verify_and_predict(pristine: dict[str, Path]) -> None:
    from nbtoolkit import load_bundle, verify_bundle

    report = verify_bundle(pristine["tree"])
    assert report.ok and len(report.files) >= 7 and "OK:" in report.summary() and not report.archive
    bundle = load_bundle(pristine["tree"])
    assert bundle.name == "tree" and bundle.version == "0.1.0" and "tree 0.1.0" in repr(bundle)
    assert "verified" in bundle._repr_html_() and bundle.card.startswith("# Model card: tree 0.1.0")
    expected = bundle.model.predict(X[:20])
    assert (bundle.predict(X[:20]) == expected).all() and bundle.predict_proba(X[:3]).shape == (3, 2)
    # columns in another order are put back in the signature's order
    assert (bundle.predict(X[X.columns[::-1]][:20]) == expected).all()

    archived = verify_bundle(pristine["archive"])
    assert archived.archive and archived.manifest["model"] == "tree-archive"
    with tarfile.open(pristine["archive"]) as tar:
        assert all(m.name.startswith("tree-archive-0.1.0") for m in tar.getmembers())
    assert (load_bundle(pristine["archive"]).predict(X[:20]) == expected).all()


def test_archive_made_with_gnu_tar_verifies(pristine: dict[str, Path], tmp_path: Path) -> None:
    import subprocess

    from nbtoolkit import verify_bundle

    archive = tmp_path / "by-hand.tgz"
    subprocess.run(["tar", "czf", str(archive), "-C", str(pristine["tree"]), "."], check=True)
    report = verify_bundle(archive)
    assert report.archive and report.manifest["model"] == "tree" and len(report.files) >= 7


def test_archive_that_expands_past_the_budget_is_refused_before_extraction(pristine: dict[str, Path], tmp_path: Path) -> None:
    import subprocess
    import tarfile

    from nbtoolkit.errors import BundleIntegrityError
    from nbtoolkit.export.verify import extract_archive

    archive = tmp_path / "bundle.tgz"
    subprocess.run(["tar", "czf", str(archive), "-C", str(pristine["tree"]), "."], check=True)
    with tarfile.open(archive) as tar:
        total = sum(m.size for m in tar.getmembers() if m.isreg())
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(BundleIntegrityError) as info:
        extract_archive(archive, dest, max_bytes=total - 1)
    assert any("expands to" in p and f"{total:,}" in p for p in info.value.problems)
    assert not any(dest.iterdir()), "nothing may be extracted from a refused archive"
    assert extract_archive(archive, dest, max_bytes=total).is_dir()


def test_flipped_byte_in_the_model_is_named(bundle: Path) -> None:
    model = bundle / "model" / "model.skops"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    (problem,) = problems_of(bundle)
    assert problem.startswith("model/model.skops: changed (sha256")


def test_added_and_deleted_files_are_named(bundle: Path) -> None:
    (bundle / "model" / "backdoor.py").write_text("import os")
    (bundle / "signature.json").unlink()
    problems = problems_of(bundle)
    assert "model/backdoor.py: extra file not listed in the manifest" in problems
    assert "signature.json: missing (listed in the manifest, not in the bundle)" in problems
    assert len(problems) == 2


def test_unsafe_manifest_entries_are_refused(bundle: Path) -> None:
    digest = hashlib.sha256(b"x").hexdigest()

    def tamper(data: dict[str, Any]) -> None:
        data["files"] += [
            {"path": "../evil.txt", "sha256": digest, "size": 1},
            {"path": "/etc/passwd", "sha256": digest, "size": 1},
            {"path": "model_card.md", "sha256": digest, "size": 1},
            {"path": "MODEL_CARD.md", "sha256": digest, "size": 1},
            {"path": "model\\x.txt", "sha256": digest, "size": 1},
        ]

    rewrite_manifest(bundle, tamper)
    text = "\n".join(problems_of(bundle))
    assert "manifest entry '../evil.txt': '..' in path" in text
    assert "manifest entry '/etc/passwd': absolute path" in text
    assert "manifest entry 'model_card.md': duplicate name" in text
    assert "manifest entry 'MODEL_CARD.md': name collides with 'model_card.md'" in text
    assert "backslash" in text
    assert not (bundle.parent / "evil.txt").exists()


def test_links_and_special_files_are_refused(bundle: Path) -> None:
    os.symlink("/etc/passwd", bundle / "passwd")
    model = bundle / "model" / "model.skops"
    os.link(model, bundle / "model" / "copy.skops")
    os.mkfifo(bundle / "pipe")
    problems = problems_of(bundle)
    assert "passwd: symbolic link (links are refused)" in problems
    assert any(p.startswith("model/model.skops: hard link") for p in problems)
    assert any(p.startswith("model/copy.skops: hard link") for p in problems)
    assert "pipe: FIFO (only regular files are allowed)" in problems


def test_symlinked_model_file_is_refused(bundle: Path, tmp_path: Path) -> None:
    model = bundle / "model" / "model.skops"
    outside = tmp_path / "outside.skops"
    shutil.move(model, outside)
    os.symlink(outside, model)
    (problem,) = problems_of(bundle)
    assert problem == "model/model.skops: symbolic link (links are refused)"


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def _copy_members(archive: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    out = []
    with tarfile.open(archive) as tar:
        for m in tar.getmembers():
            fh = tar.extractfile(m) if m.isfile() else None
            out.append((m, fh.read() if fh else None))
    return out


@pytest.mark.parametrize(
    ("name", "message"),
    [("tree-archive-0.1.0/../../evil.txt", "'..' in path"), ("/tmp/nbtk-evil.txt", "absolute path")],
)
def test_archive_with_escaping_member_is_refused(pristine: dict[str, Path], tmp_path: Path, name: str, message: str) -> None:
    members = _copy_members(pristine["archive"])
    members.append((tarfile.TarInfo(name), b"pwned"))
    archive = _tar(tmp_path / "evil.tar.gz", members)
    problems = problems_of(archive)
    assert any(name in p and message in p for p in problems), problems
    assert not (tmp_path.parent / "evil.txt").exists() and not Path("/tmp/nbtk-evil.txt").exists()


def test_archive_with_links_or_tampered_model_is_refused(pristine: dict[str, Path], tmp_path: Path) -> None:
    members = _copy_members(pristine["archive"])
    link = tarfile.TarInfo("tree-archive-0.1.0/notes.txt")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    hard = tarfile.TarInfo("tree-archive-0.1.0/hard.txt")
    hard.type, hard.linkname = tarfile.LNKTYPE, "tree-archive-0.1.0/model_card.md"
    dup = tarfile.TarInfo("tree-archive-0.1.0/Model_Card.md")
    dev = tarfile.TarInfo("tree-archive-0.1.0/null")
    dev.type, dev.devmajor, dev.devminor = tarfile.CHRTYPE, 1, 3
    problems = problems_of(
        _tar(tmp_path / "links.tar.gz", [*members, (link, None), (hard, None), (dup, b"x"), (dev, None)])
    )
    text = "\n".join(problems)
    assert "'tree-archive-0.1.0/null': device file" in text
    assert "'tree-archive-0.1.0/notes.txt': symbolic link" in text
    assert "'tree-archive-0.1.0/hard.txt': hard link" in text
    assert "'tree-archive-0.1.0/Model_Card.md': name collides" in text

    flipped = []
    for info, data in members:
        if data is not None and info.name.endswith(".skops"):
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        flipped.append((info, data))
    (problem,) = problems_of(_tar(tmp_path / "flipped.tar.gz", flipped))
    assert problem.startswith("model/model.skops: changed")

    (tmp_path / "junk.tar.gz").write_bytes(b"not a tar file at all")
    (problem,) = problems_of(tmp_path / "junk.tar.gz")
    assert "not a readable tar archive" in problem


def test_missing_path_and_non_bundles(tmp_path: Path) -> None:
    from nbtoolkit import load_bundle, verify_bundle

    with pytest.raises(InputError, match="does not exist"):
        verify_bundle(tmp_path / "nope")
    with pytest.raises(InputError):
        load_bundle(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    (problem,) = problems_of(tmp_path / "empty")
    assert problem.startswith("MANIFEST.json: missing")


def test_signature_violations_name_the_columns(pristine: dict[str, Path]) -> None:
    from nbtoolkit import load_bundle
    from nbtoolkit.export.load import SignatureError

    bundle = load_bundle(pristine["tree"])
    with pytest.raises(SignatureError) as info:
        bundle.predict(X.drop(columns=["mean radius", "worst area"]))
    assert "missing columns: 'mean radius', 'worst area'" in str(info.value)
    assert info.value.exit_code == 2
    with pytest.raises(SignatureError, match="extra columns: 'customer_id'"):
        bundle.predict(X.assign(customer_id=1))
    bad = X.astype({"mean texture": str, "mean area": bool})
    with pytest.raises(SignatureError) as info:
        bundle.predict(bad)
    msg = str(info.value)
    assert re.search(r"'mean texture' expected float64, got (object|str)", msg) and "'mean area' expected float64, got bool" in msg
    with pytest.raises(SignatureError, match="expected a pandas DataFrame with 30 columns"):
        bundle.predict(X.to_numpy())
    # integers where floats are expected are fine (lossless for the model)
    assert len(bundle.predict(X[:5].round().astype({"mean radius": "int64"}))) == 5

    arr = load_bundle(pristine["ndarray"])
    assert arr.signature["kind"] == "ndarray" and arr.signature["shape"] == [None, 30]
    assert len(arr.predict(X.to_numpy()[:4])) == 4
    with pytest.raises(SignatureError, match=r"expected rows of shape \[30\], got \[29\]"):
        arr.predict(X.to_numpy()[:4, :29])
    with pytest.raises(SignatureError, match="expected dtype float64, got <U"):
        arr.predict(X.to_numpy()[:4].astype(str))


def test_pickle_bundle_needs_trust(pristine: dict[str, Path]) -> None:
    from nbtoolkit import load_bundle

    path = pristine["pickle"]
    manifest = json.loads((path / "MANIFEST.json").read_text())
    assert manifest["model_file"]["serializer"] == "pickle" and manifest["model_file"]["safe"] is False
    with pytest.raises(BundleIntegrityError) as info:
        load_bundle(path)
    (problem,) = info.value.problems
    assert "model/model.pkl" in problem and "trust=True" in problem
    assert len(load_bundle(path, trust=True).predict(X[:3])) == 3
    assert "UNSAFE" in (path / "model_card.md").read_text()


def test_skops_untrusted_function_must_be_accepted_explicitly(pristine: dict[str, Path]) -> None:
    from nbtoolkit import load_bundle

    path = pristine["function"]
    assert "numpy.nan_to_num" in json.loads((path / "MANIFEST.json").read_text())["model_file"]["untrusted_types"]
    with pytest.raises(BundleIntegrityError) as info:
        load_bundle(path)
    assert "numpy.nan_to_num" in str(info.value) and "sklearn.tree._tree.Tree" not in str(info.value)
    bundle = load_bundle(path, trusted_types=["numpy.nan_to_num"])
    assert len(bundle.predict(X[:3])) == 3


def test_corrupt_skops_file_with_a_matching_manifest_is_a_bundle_integrity_error(bundle: Path) -> None:
    model = bundle / "model" / "model.skops"
    model.write_bytes(b"PK\x03\x04 this is not a zip archive any more")

    def rehash(data: dict[str, Any]) -> None:  # a consistent manifest: only loading can tell
        for entry in data["files"]:
            if entry["path"] == "model/model.skops":
                entry["sha256"] = hashlib.sha256(model.read_bytes()).hexdigest()
                entry["size"] = model.stat().st_size

    rewrite_manifest(bundle, rehash)
    from nbtoolkit import load_bundle, verify_bundle

    assert verify_bundle(bundle).ok
    with pytest.raises(BundleIntegrityError) as info:
        load_bundle(bundle)
    text = str(info.value)
    assert "model/model.skops: not a readable skops file (BadZipFile" in text and "export it again" in text


@pytest.mark.parametrize("target", ["../outside.skops", "model_card.md.missing", None])
def test_verify_refuses_a_model_file_outside_the_listed_files(bundle: Path, target: str | None) -> None:
    def tamper(data: dict[str, Any]) -> None:
        data["model_file"]["file"] = target

    rewrite_manifest(bundle, tamper)
    problems = problems_of(bundle)
    assert problems == [f"MANIFEST.json: model_file {target!r} is not a file of the bundle (it must be one of the listed files)"]
