import io
import tarfile
import urllib.error

import pytest

from pipeline.data import imdb as load
from pipeline.config import Config
from pipeline.data.imdb import LoadError, load_reviews
from tests.conftest import NEGATIVE, POSITIVE, balanced_reviews, make_archive, real_archive


def test_reads_archive_into_one_row_per_review(tiny_archive):
    loaded = load_reviews(tiny_archive, progress=False)
    frame = loaded.frame
    assert len(frame) == 24
    assert list(frame.columns) == load.COLUMNS
    row = frame.set_index("sample_id").loc["train/pos/3_10"]
    assert row["path"] == "aclImdb/train/pos/3_10.txt"
    assert (row["split"], row["label"], row["rating"]) == ("train", 1, 10)
    assert row["movie_id"] == "tt1000001"  # review 3 -> line 3 of urls_pos.txt
    assert "<br />" in row["text"] and "<br" not in row["display_text"]
    assert "\n\nGreat!" in row["display_text"]
    assert row["n_words"] == len(row["display_text"].split())
    assert loaded.report.counts() == {}


def test_extracted_folder_gives_the_same_frame(tiny_archive, tmp_path):
    import tarfile

    with tarfile.open(tiny_archive) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    from_dir = load_reviews(tmp_path / "x" / "aclImdb", progress=False).frame
    from_tar = load_reviews(tiny_archive, progress=False).frame
    assert from_dir.equals(from_tar)


def test_published_layout_skips_unsup_and_extra_files(tmp_path):
    reviews = balanced_reviews(2)
    extra = {"train/unsup/0_0": b"unlabeled", "train/pos/labeledBow": b"0 0:1"}
    path = make_archive(tmp_path / "aclImdb_v1.tar", {**reviews, **extra}, gz=False)
    frame = load_reviews(path, progress=False).frame
    assert len(frame) == 8 and not frame["sample_id"].str.contains("unsup").any()


def test_not_utf8_is_kept_repaired_and_reported(tmp_path):
    reviews = balanced_reviews(2)
    reviews["train/neg/7_2"] = b"Bad \xff\xfe bytes but a real review."
    loaded = load_reviews(make_archive(tmp_path / "a.tar.gz", reviews), progress=False)
    assert loaded.report.counts() == {"not_utf8": 1}
    text = loaded.frame.set_index("sample_id").loc["train/neg/7_2", "text"]
    assert "\ufffd" in text and "real review" in text
    assert "not valid UTF-8" in loaded.report.lines()[0] and "train/neg/7_2" in loaded.report.lines()[0]


@pytest.mark.parametrize(
    "sample_id, payload, kind, kept",
    [
        ("train/pos/8_9", b"   \n ", "empty", False),
        ("train/pos/notanumber", POSITIVE.encode(), "no_rating", False),
        ("train/pos/9_2", NEGATIVE.encode(), "rating_contradicts_folder", True),
        ("test/neg/9_8", POSITIVE.encode(), "rating_contradicts_folder", True),
    ],
)
def test_bad_reviews_are_counted_never_silently_dropped(tmp_path, sample_id, payload, kind, kept):
    reviews = balanced_reviews(2)
    reviews[sample_id] = payload
    loaded = load_reviews(make_archive(tmp_path / "a.tar.gz", reviews), progress=False)
    assert loaded.report.problems == {kind: [sample_id]}
    assert loaded.report.reviews_read == 9
    assert (sample_id in set(loaded.frame["sample_id"])) is kept
    assert len(loaded.frame) == (9 if kept else 8)


def test_missing_movie_urls_are_reported(tmp_path):
    reviews = balanced_reviews(2)
    loaded = load_reviews(make_archive(tmp_path / "a.tar.gz", reviews, urls={}), progress=False)
    assert loaded.report.counts() == {"no_movie_id": 8}
    assert loaded.frame["movie_id"].isna().all()


def test_corrupt_archive_is_a_clear_error(tmp_path):
    path = tmp_path / "aclImdb_v1.tar.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(256)) * 40)
    with pytest.raises(LoadError, match="corrupt or truncated.*Download the archive again"):
        load_reviews(path, progress=False)


def test_truncated_archive_is_a_clear_error(tiny_archive, tmp_path):
    data = tiny_archive.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(LoadError, match="corrupt or truncated"):
        load_reviews(cut, progress=False)


def test_empty_file_and_missing_path(tmp_path):
    (tmp_path / "empty.tar.gz").write_bytes(b"")
    with pytest.raises(LoadError, match="empty file"):
        load_reviews(tmp_path / "empty.tar.gz", progress=False)
    with pytest.raises(LoadError, match="does not exist"):
        load_reviews(tmp_path / "nope.tar.gz", progress=False)


def test_archive_without_reviews(tmp_path):
    path = make_archive(tmp_path / "other.tar.gz", {}, urls={})
    with pytest.raises(LoadError, match="No reviews found"):
        load_reviews(path, progress=False)


def test_sample_is_seeded_and_label_stratified(tmp_path):
    path = make_archive(tmp_path / "a.tar.gz", balanced_reviews(20))
    a = load_reviews(path, sample=20, seed=3, progress=False).frame
    b = load_reviews(path, sample=20, seed=3, progress=False).frame
    c = load_reviews(path, sample=20, seed=4, progress=False).frame
    assert len(a) == 20 and a.equals(b)
    assert set(a["sample_id"]) != set(c["sample_id"])
    assert a["label"].sum() == 10


def test_locate_prefers_explicit_path_then_env_then_data_dir(tmp_path, monkeypatch, tiny_archive):
    monkeypatch.delenv("IMDB_DATA", raising=False)
    assert load.locate_data(Config(data=tiny_archive)) == tiny_archive
    monkeypatch.setenv("IMDB_DATA", str(tiny_archive))
    assert load.locate_data(Config(data_dir=tmp_path / "nothing")) == tiny_archive
    monkeypatch.delenv("IMDB_DATA")
    data_dir = tmp_path / "d"
    data_dir.mkdir()
    (data_dir / "aclImdb_v1_labeled.tar.gz").write_bytes(tiny_archive.read_bytes())
    assert load.locate_data(Config(data_dir=data_dir)) == data_dir / "aclImdb_v1_labeled.tar.gz"
    with pytest.raises(LoadError, match="does not exist.*--data"):
        load.locate_data(Config(data=tmp_path / "missing.tar.gz"))


def test_offline_without_data_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.delenv("IMDB_DATA", raising=False)

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(load.urllib.request, "urlopen", offline)
    with pytest.raises(LoadError) as err:
        load.locate_data(Config(data_dir=tmp_path / "data", progress=False))
    message = str(err.value)
    assert "--data PATH" in message and "IMDB_DATA" in message and str(tmp_path / "data") in message
    assert not list((tmp_path / "data").glob("*.part"))


def test_real_archive_has_50000_reviews_and_movie_ids():
    frame = load_reviews(real_archive(), progress=False).frame
    assert len(frame) == 50_000
    assert frame.groupby(["split", "label"]).size().tolist() == [12_500] * 4
    assert frame["movie_id"].notna().all()
    assert frame.loc[frame["sample_id"] == "test/neg/10003_3", "rating"].item() == 3


def _integrity_archive(path):
    """Good reviews plus: one review twice (again under another prefix), a rating of 300, and a symbolic link, a hard
    link and a FIFO named like reviews."""
    good = balanced_reviews(3)
    with tarfile.open(path, "w:gz") as tar:
        def add(name, payload=b"", kind=tarfile.REGTYPE, link=""):
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.size = kind, link, len(payload)
            tar.addfile(info, io.BytesIO(payload) if payload else None)

        for sample_id, payload in good.items():
            add(f"aclImdb/{sample_id}.txt", payload)
        add("aclImdb/train/pos/0_7.txt", b"A second copy, different words. " * 3)
        add("copy/aclImdb/train/neg/0_1.txt", good["train/neg/0_1"])
        add("aclImdb/train/pos/50_300.txt", POSITIVE.encode())
        add("aclImdb/train/pos/51_8.txt", kind=tarfile.SYMTYPE, link="/etc/passwd")
        add("aclImdb/train/pos/52_8.txt", kind=tarfile.LNKTYPE, link="aclImdb/train/pos/0_7.txt")
        add("aclImdb/train/neg/53_2.txt", kind=tarfile.FIFOTYPE)
    return path


def test_duplicates_bad_ratings_and_links_are_reported_not_silently_mixed_in(tmp_path):
    loaded = load_reviews(_integrity_archive(tmp_path / "a.tar.gz"), progress=False)
    frame, problems = loaded.frame, loaded.report.problems
    assert frame["sample_id"].is_unique and len(frame) == 12
    assert frame.set_index("sample_id").loc["train/pos/0_7", "text"].startswith(POSITIVE)  # the first copy kept
    assert problems["duplicate_member"] == ["aclImdb/train/pos/0_7.txt", "copy/aclImdb/train/neg/0_1.txt"]
    assert problems["rating_out_of_range"] == ["train/pos/50_300"]
    assert frame["rating"].between(1, 10).all()
    assert problems["skipped_member"] == ["aclImdb/train/pos/51_8.txt", "aclImdb/train/pos/52_8.txt",
                                          "aclImdb/train/neg/53_2.txt"]
    lines = loaded.report.lines()
    assert any(line.startswith("3 text(s) not a regular file (a link, FIFO or device") for line in lines)
    assert any(line.startswith("2 text(s) the same review twice") for line in lines)
    assert any(line.startswith("1 text(s) a star rating outside 1-10") for line in lines)


def test_a_run_on_such_an_archive_keeps_the_warnings(tmp_path):
    from pipeline.data.load import load_dataset

    data = load_dataset(Config(data=_integrity_archive(tmp_path / "a.tar.gz"), folds=2, progress=False))
    assert {"duplicate_member", "rating_out_of_range", "skipped_member"} <= set(data.report.problems)


def test_a_download_that_is_not_the_published_file_is_deleted_and_said(tiny_archive, tmp_path, monkeypatch):
    """A well-formed archive served in place of the published one (a mirror, a proxy): refused on its checksum."""
    import hashlib

    monkeypatch.delenv("IMDB_DATA", raising=False)
    served = tiny_archive.read_bytes()

    def serve(*args, **kwargs):
        response = io.BytesIO(served)
        response.headers = {"Content-Length": str(len(served))}
        return response

    monkeypatch.setattr(load.urllib.request, "urlopen", serve)
    data_dir = tmp_path / "data"
    with pytest.raises(LoadError, match=r"is not the published file \(sha256 [0-9a-f]{16}\.\.\., expected "
                                        r"c40f74a18d3b61f9\.\.\.\).*deleted.*--data PATH"):
        load.locate_data(Config(data_dir=data_dir, progress=False))
    assert list(data_dir.iterdir()) == []  # neither the archive nor a .part is left
    monkeypatch.setattr(load, "PUBLISHED_SHA256", hashlib.sha256(served).hexdigest())
    with pytest.raises(LoadError, match="holds 24 labeled reviews, not 50,000"):  # checksum passes, content checked
        load.locate_data(Config(data_dir=data_dir, progress=False))
