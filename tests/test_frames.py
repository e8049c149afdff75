import pytest

from farm.domain.frames import MAX_FRAMES, chunk_frames, format_frames, parse_frames
from farm.errors import BadRequest


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("1-5", [1, 2, 3, 4, 5]),
        ("7", [7]),
        ("1-10x3", [1, 4, 7, 10]),
        ("1,5,10-12", [1, 5, 10, 11, 12]),
        (" 3-4 , 1 ", [1, 3, 4]),
        ("1-3,2-4", [1, 2, 3, 4]),
        ("-2-1", [-2, -1, 0, 1]),
        ("1-250x2,300", [*range(1, 251, 2), 300]),
    ],
)
def test_parse_frames(spec, expected):
    assert parse_frames(spec) == expected


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("10-1", "reversed"),
        ("a-b", "not a number"),
        ("1-5x", "not a number"),
        ("1,,2", "empty part"),
        ("1-5x0", "at least 1"),
        ("1-1000000", "more than"),
        ("1-2000000", "outside"),
        ("1.5", "not a number"),
    ],
)
def test_parse_frames_errors_say_what_to_fix(spec, fragment):
    with pytest.raises(BadRequest) as err:
        parse_frames(spec)
    assert fragment in err.value.message


def test_max_frames_is_accepted_exactly():
    assert len(parse_frames(f"1-{MAX_FRAMES}")) == MAX_FRAMES


def test_chunking():
    assert chunk_frames([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    assert chunk_frames([1, 2, 3], 8) == [[1, 2, 3]]
    with pytest.raises(BadRequest):
        chunk_frames([1], 0)


def test_format_frames_round_trips():
    frames = parse_frames("1-8,10,12-13")
    assert format_frames(frames) == "1-8,10,12-13"
    assert parse_frames(format_frames(frames)) == frames
    assert format_frames([]) == ""
