"""Caption sanitising, titles, the CSV format and the caption store / journal."""

import json
import random

import pandas as pd
import pytest

from builders.errors import UserError
from builders.tasks import DEGRADATIONS
from captioning.csvfile import (
    FALLBACK_CAPTION,
    make_title,
    read_csv,
    sanitize_caption,
    split_title,
    write_csv,
)
from captioning.store import (
    CaptionRecord,
    Journal,
    journal_dir,
    journal_path,
    merge_journals,
    read_journal,
    read_store,
    store_path,
)


@pytest.mark.parametrize("raw, clean", [
    ("a cat sitting on a couch", "a cat sitting on a couch"),
    ("arafed man: standing", "arafed man standing"),
    ("a : b :: c", "a b c"),
    ("tab\there\nnew line\r\nend", "tab here new line end"),
    ("", FALLBACK_CAPTION),
    ("   ", FALLBACK_CAPTION),
    (" : : : ", FALLBACK_CAPTION),
    (None, FALLBACK_CAPTION),
    ('a "quoted" word', "a 'quoted' word"),
    ("screen 16:9 ratio", "screen 16:9 ratio"),
    ("ends with colon:", "ends with colon"),
    ("non\u00a0breaking: space", "non breaking space"),
])
def test_sanitize_caption(raw, clean):
    assert sanitize_caption(raw) == clean


def test_sanitized_titles_split_with_the_official_rule():
    # Random strings over the dangerous alphabet: every title must split into exactly the
    # sanitised caption and the degradation word, and carry no CSV-breaking character.
    rng = random.Random(0)
    alphabet = [":", " ", "\t", "\n", '"', "a", "b", ":", "  "]
    for i in range(2000):
        raw = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        word = DEGRADATIONS[i % len(DEGRADATIONS)]
        title = make_title(raw, word)
        assert not any(c in title for c in '\t\n\r"')
        cap, deg = title.split(": ")  # exactly what the official CsvDataset does
        assert deg == word and cap == sanitize_caption(raw) and cap.strip() == cap and cap


def test_make_title_takes_any_prompt_text_but_refuses_unsplittable_ones():
    # The open vocabulary: a type's prompt text ends the title, DA-CLIP word or not.
    assert make_title("a cat", "moire pattern") == "a cat: moire pattern"
    for bad in ("a: b", "", "two\tparts", 'say "x"', " padded"):
        with pytest.raises(ValueError):
            make_title("a cat", bad)


def test_split_title_rejects_extra_separator():
    assert split_title("a cat: noisy") == ("a cat", "noisy")
    with pytest.raises(ValueError):
        split_title("a cat: on a mat: noisy")


def test_writer_and_reader_share_one_title_rule(tmp_path):
    """A title with two ': ' is refused by the writer and the reader alike (the official loader's
    ``caption, degradation = title.split(": ")`` fails on it); one ': ' reads back identically."""
    from daclip.data import read_captions_csv

    two = "a man: riding a bike: hazy"
    with pytest.raises(ValueError, match="exactly one"):
        write_csv(tmp_path / "w.csv", [(str(tmp_path / "a.png"), two)])
    assert not (tmp_path / "w.csv").exists()
    csv = tmp_path / "r.csv"
    csv.write_text(f"filepath\ttitle\n{tmp_path / 'a.png'}\t{two}\n")
    with pytest.raises(UserError, match="r.csv:2: .*exactly one"):
        read_captions_csv(csv)
    one = make_title("a man: riding a bike", "hazy")
    assert one == "a man riding a bike: hazy"
    write_csv(csv, [(str(tmp_path / "a.png"), one)])
    item = read_captions_csv(csv)[0]
    assert (item.caption, item.degradation) == split_title(one) == ("a man riding a bike", "hazy")


def test_csv_round_trip_with_pandas(tmp_path):
    rows = [("/data/train/noisy/LQ/0001.png", make_title("a cat: on a mat", "noisy")),
            ("/data/train/hazy/LQ/0002.png", make_title("", "hazy"))]
    path = tmp_path / "daclip_train.csv"
    assert write_csv(path, rows) == 2
    text = path.read_text()
    assert text == ("filepath\ttitle\n/data/train/noisy/LQ/0001.png\ta cat on a mat: noisy\n"
                    f"/data/train/hazy/LQ/0002.png\t{FALLBACK_CAPTION}: hazy\n")
    df = read_csv(path)
    assert list(df.columns) == ["filepath", "title"]
    assert df.values.tolist() == [[r[0], r[1]] for r in rows]


def test_csv_refuses_bad_path_and_title(tmp_path):
    with pytest.raises(UserError, match="tab"):
        write_csv(tmp_path / "x.csv", [("/a\tb.png", "a cat: noisy")])
    with pytest.raises(ValueError):
        write_csv(tmp_path / "x.csv", [("/a.png", "a cat: on: noisy")])
    assert not (tmp_path / "x.csv").exists()


def _rec(i, model="m"):
    return CaptionRecord(f"{i:064x}", f"caption {i}", f"caption {i}", model)


def test_journal_survives_a_torn_line_and_merges(tmp_path):
    with Journal(tmp_path, 0) as j:
        j.append([_rec(1), _rec(2)])
        j.append([_rec(3)])
    path = journal_path(tmp_path, 0)
    # A crash in the middle of the next batch's write leaves half a line.
    with open(path, "a") as fh:
        fh.write(json.dumps(_rec(4).__dict__)[:20])
    assert [r.gt_sha256 for r in read_journal(path)] == [_rec(i).gt_sha256 for i in (1, 2, 3)]
    # The resumed run appends after the torn line without losing its first record.
    with Journal(tmp_path, 0) as j:
        j.append([_rec(5)])
    with Journal(tmp_path, 1) as j:
        j.append([_rec(6), _rec(1, model="other")])  # later journal wins for the same key
    assert [r.gt_sha256 for r in read_journal(path)] == [_rec(i).gt_sha256 for i in (1, 2, 3, 5)]

    merged = merge_journals(tmp_path)
    assert sorted(merged) == sorted(_rec(i).gt_sha256 for i in (1, 2, 3, 5, 6))
    assert merged[_rec(1).gt_sha256].model == "other"
    assert not journal_dir(tmp_path).exists()
    df = pd.read_parquet(store_path(tmp_path))
    assert list(df.columns) == ["gt_sha256", "caption", "raw_caption", "model"]
    assert len(df) == 5 and read_store(tmp_path) == merged
    # Idempotent: nothing to merge leaves the store as it is.
    assert merge_journals(tmp_path) == merged
