import torch

from tsu_torch.shapes import bucket, pad_rows


def test_buckets_bound_padding_and_count() -> None:
    sizes = range(1, 5000)
    buckets = {bucket(size) for size in sizes}
    for size in sizes:
        assert size <= bucket(size) <= max(size * 1.25, 8)
    assert len(buckets) < 60  # about four per octave
    assert bucket(bucket(777)) == bucket(777)


def test_pad_rows_keeps_the_data() -> None:
    values = torch.arange(2 * 9 * 3, dtype=torch.float32).reshape(2, 9, 3)
    padded, rows = pad_rows(values, fill=-1.0)
    assert rows == 18 and padded.shape == (bucket(18), 3)
    torch.testing.assert_close(padded[:18], values.reshape(18, 3))
    assert torch.all(padded[18:] == -1)
