"""What the benchmark scripts share: their command-line counts and their tables."""

import argparse


def positive_count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text}")
    return value


def print_table(columns: tuple[str, ...], rows: list[tuple[str, ...]], left: int = 1) -> None:
    """Columns as wide as their widest cell; the first ``left`` are text (left-aligned),
    the rest figures (right-aligned)."""
    widths = [max(len(row[i]) for row in (columns, *rows)) for i in range(len(columns))]
    for row in (columns, *rows):
        cells = [cell.ljust(width) if i < left else cell.rjust(width)
                 for i, (cell, width) in enumerate(zip(row, widths, strict=True))]
        print("  ".join(cells))
