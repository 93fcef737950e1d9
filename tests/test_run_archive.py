"""A run's archive from another campaign host unpacks as plain files under the store, with
tarfile's "data" filter or, on a Python without it (Debian bookworm's 3.11.2), our own
refusals: nothing lands outside the store, links and devices are refused."""
import io
import tarfile

import pytest

from harness.campaign_exec import _extract_data


def archive(*members: tarfile.TarInfo, data: bytes = b"ok\n") -> tarfile.TarFile:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for m in members:
            if m.isfile():
                m.size = len(data)
                tar.addfile(m, io.BytesIO(data))
            else:
                tar.addfile(m)
    buf.seek(0)
    return tarfile.open(fileobj=buf, mode="r:gz")


def member(name: str, kind=tarfile.REGTYPE, mode=0o644, link="") -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type, m.mode, m.linkname = kind, mode, link
    return m


@pytest.fixture(params=["data filter", "without it"])
def python(request, monkeypatch):
    if request.param == "without it":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    elif not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python's tarfile has no data filter")
    return request.param


def test_plain_files_and_folders_unpack_under_the_store(tmp_path, python):
    store = tmp_path / "store"
    _extract_data(archive(member("runs", tarfile.DIRTYPE, 0o755), member("runs/history.jsonl", mode=0o4777)),
                  str(store))
    path = store / "runs" / "history.jsonl"
    assert path.read_bytes() == b"ok\n"
    assert path.stat().st_mode & 0o4002 == 0   # no set-id bit, not writable by others


@pytest.mark.parametrize("bad", [member("../escaped"), member("runs/link", tarfile.SYMTYPE, link="/etc/passwd"),
                                 member("runs/dev", tarfile.CHRTYPE)],
                         ids=["parent", "symlink", "device"])
def test_a_member_that_would_leave_the_store_or_is_not_plain_is_refused(tmp_path, python, bad):
    store = tmp_path / "store"
    with pytest.raises(tarfile.TarError):
        _extract_data(archive(bad), str(store))
    assert not (tmp_path / "escaped").exists()
    assert not (store / "runs" / "link").is_symlink()


def test_an_absolute_name_never_lands_outside_the_store(tmp_path, python):
    # The data filter strips the leading slash (the file lands inside); without it the
    # member is refused. Either way nothing is written where the name points.
    outside = tmp_path / "absolute-escape"
    try:
        _extract_data(archive(member(str(outside))), str(tmp_path / "store"))
    except tarfile.TarError:
        pass
    assert not outside.exists()
