from workers.protocol import EV_ERROR, EV_FRAME, event, parse_event, parse_stats

# The first line is bpy 5.0.1's render_stats string (DESIGN.md); the others have the shape of older and
# longer renders (hours, K/G memory units, the 'Fra:' prefix of 4.x).
CAPTURED = [
    ("Remaining: 00:00.47 | Mem: 3M | Sample 1/16", 1, 16, 0.47, 3.0),
    ("Fra:1 Mem:12.5M | Time:00:01.20 | Remaining: 01:02.50 | Mem: 1.5G | Sample 8/128", 8, 128, 62.5, 12.5),
    ("Remaining: 1:00:05.00 | Mem: 512K | Sample 64/64", 64, 64, 3605.0, 0.5),
]


def test_parse_stats_on_captured_lines():
    for text, sample, samples, remaining, mem in CAPTURED:
        stats = parse_stats(text)
        assert (stats.sample, stats.samples) == (sample, samples)
        assert abs(stats.remaining_s - remaining) < 1e-6
        assert abs(stats.mem_mb - mem) < 1e-6
        assert 0 < stats.fraction <= 1


def test_parse_stats_without_numbers():
    stats = parse_stats("Synchronizing object | Cube")
    assert stats.sample is None and stats.fraction is None


def test_event_round_trip():
    ev = parse_event(event(EV_FRAME, frame=3, path="/x/frame_000003.png", seconds=0.5))
    assert ev.kind == EV_FRAME and ev.data == {"frame": 3, "path": "/x/frame_000003.png", "seconds": 0.5}


def test_garbled_lines_become_errors():
    assert parse_event(b"Blender 5.0.1 (hash abc) something\n").kind == EV_ERROR
    assert parse_event(b'{"no": "kind"}').kind == EV_ERROR
    assert parse_event(b"[1, 2]").kind == EV_ERROR
