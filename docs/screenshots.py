"""Render report pages to PNG with headless Chromium, for the README.

    python docs/screenshots.py REPORT.html OUT.png [--width 1280] [--height 0] [--colors 256]

The whole page (or its first ``--height`` pixels) at ``--width`` CSS pixels,
through the same DevTools-on-a-pipe client the browser test uses
(``tests/browser.py``). The PNG is reduced to ``--colors`` colours
(Pillow's adaptive palette) to keep the repository small; ``--colors 0``
keeps it as Chromium wrote it. The committed images were made with::

    gmmflow run --seed 0 --out /tmp/faithful
    gmmflow run --data galaxies --k 1:4 --seed 0 --draws 500 --tune 500 --out /tmp/galaxies
    python docs/screenshots.py /tmp/faithful/report.html docs/images/report_faithful.png
    python docs/screenshots.py /tmp/galaxies/report.html docs/images/report_galaxies.png
    python docs/screenshots.py /tmp/faithful/report.html docs/images/report_faithful_phone.png --width 400 \
        --height 1500
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser import Browser, find_chromium  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=0, help="keep only the first HEIGHT pixels (0: all)")
    parser.add_argument("--colors", type=int, default=256)
    args = parser.parse_args(argv)
    executable = find_chromium()
    if executable is None:
        print("no Chromium found: apt-get install chromium, or set GMMFLOW_CHROMIUM", file=sys.stderr)
        return 2
    with Browser(executable) as browser:
        browser.open(args.report, args.width)
        if browser.console_errors:
            print(f"console errors: {browser.console_errors}", file=sys.stderr)
            return 1
        browser.screenshot(args.out)
    if args.colors or args.height:
        from PIL import Image

        with Image.open(args.out) as image:
            image = image.convert("RGB")
            if args.height:
                image = image.crop((0, 0, image.width, min(args.height, image.height)))
            if args.colors:
                image = image.quantize(args.colors, method=Image.Quantize.MEDIANCUT)
        image.save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
