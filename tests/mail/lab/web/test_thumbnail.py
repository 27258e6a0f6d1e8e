"""
Tests for L{twisted_netlab.mail.lab.web.thumbnail}: Mailpit's 180x120 JPEG
(crop to fill, fit the small ones on white, EXIF orientation, white under
transparency, blank for what is not a readable image), and the reason
given when Pillow is missing.
"""

from __future__ import annotations

import sys
from io import BytesIO
from typing import Any
from unittest import mock

from PIL import Image
from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.mail.lab.web.thumbnail import (
    PILLOW_MISSING,
    ThumbnailUnavailable,
    content_disposition,
    make_thumbnail,
    thumbnail_unavailable,
)

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def encoded(image: Any, kind: str = "PNG", **options: Any) -> bytes:
    out = BytesIO()
    image.save(out, kind, **options)
    return out.getvalue()


def thumbnail(data: bytes, content_type: str = "image/png", **options: Any) -> Any:
    """
    The thumbnail, checked to be a 180x120 JPEG, opened as RGB.
    """
    jpeg = make_thumbnail(data, content_type, **options)
    assert jpeg.startswith(b"\xff\xd8\xff")
    image = Image.open(BytesIO(jpeg))
    assert (image.format, image.size) == ("JPEG", (180, 120))
    return image.convert("RGB")


def near(pixel: tuple[int, ...], colour: tuple[int, int, int]) -> bool:
    """
    JPEG is lossy: within 40 of the colour on each channel.
    """
    return all(abs(a - b) <= 40 for a, b in zip(pixel, colour, strict=True))


def stripes(width: int, height: int, colours: list[tuple[int, int, int]]) -> Any:
    """
    An image of vertical stripes of equal width.
    """
    image = Image.new("RGB", (width, height))
    step = width // len(colours)
    for index, colour in enumerate(colours):
        image.paste(colour, (index * step, 0, (index + 1) * step, height))
    return image


class ThumbnailTestCase(SynchronousTestCase):
    def test_large_image_cropped_to_fill(self) -> None:
        """
        An image bigger than 180x120 is scaled to fill the frame and cropped
        around its centre: of green|red|blue stripes 540x120, only the red
        middle is left, edge to edge, no white.
        """
        image = thumbnail(encoded(stripes(540, 120, [GREEN, RED, BLUE])))
        for x in (2, 90, 177):
            self.assertTrue(
                near(image.getpixel((x, 60)), RED), (x, image.getpixel((x, 60)))
            )

    def test_scaled_down_before_cropping(self) -> None:
        """
        A 1800x1200 image is scaled to 180x120 whole (same aspect), not
        cropped to its centre: its left and right stripes show.
        """
        image = thumbnail(encoded(stripes(1800, 1200, [GREEN, RED, BLUE])))
        self.assertTrue(near(image.getpixel((20, 60)), GREEN))
        self.assertTrue(near(image.getpixel((90, 60)), RED))
        self.assertTrue(near(image.getpixel((160, 60)), BLUE))

    def test_small_image_centred_on_white(self) -> None:
        """
        An image smaller than the frame is not enlarged: it sits in the
        middle on white.
        """
        image = thumbnail(encoded(Image.new("RGB", (60, 40), RED)))
        self.assertTrue(near(image.getpixel((90, 60)), RED))
        self.assertTrue(near(image.getpixel((65, 60)), RED))
        self.assertTrue(near(image.getpixel((55, 60)), WHITE))
        self.assertTrue(near(image.getpixel((90, 35)), WHITE))

    def test_narrow_image_fitted(self) -> None:
        """
        One side under the frame is enough to fit rather than fill: a tall
        100x500 image is scaled down to 24x120, with white beside it.
        """
        image = thumbnail(encoded(Image.new("RGB", (100, 500), BLUE)))
        self.assertTrue(near(image.getpixel((90, 5)), BLUE))
        self.assertTrue(near(image.getpixel((90, 115)), BLUE))
        self.assertTrue(near(image.getpixel((60, 60)), WHITE))

    def test_transparency_is_white(self) -> None:
        """
        Transparent pixels come out white, not black.
        """
        image = Image.new("RGBA", (360, 240), (0, 0, 0, 0))
        image.paste((255, 0, 0, 255), (170, 110, 190, 130))
        result = thumbnail(encoded(image))
        self.assertTrue(near(result.getpixel((10, 10)), WHITE))
        self.assertTrue(near(result.getpixel((90, 60)), RED))

    def test_exif_orientation(self) -> None:
        """
        The EXIF orientation is applied first: a 240x150 JPEG tagged
        "rotate 90" is 150x240 upright, so it is fitted (white beside it)
        rather than cropped.
        """
        exif = Image.Exif()
        exif[0x0112] = 6  # Orientation: rotate 90 CW to display
        data = encoded(Image.new("RGB", (240, 150), GREEN), "JPEG", exif=exif)
        image = thumbnail(data, "image/jpeg")
        self.assertTrue(near(image.getpixel((90, 60)), GREEN))
        self.assertTrue(near(image.getpixel((10, 60)), WHITE))
        untagged = thumbnail(encoded(Image.new("RGB", (240, 150), GREEN), "JPEG"))
        self.assertTrue(near(untagged.getpixel((10, 60)), GREEN))

    def test_gif_and_palette(self) -> None:
        """
        A palette GIF with a transparent colour is read too.
        """
        image = Image.new("P", (300, 200), 0)
        image.putpalette([255, 0, 0] + [0, 0, 255] * 255)
        data = encoded(image, "GIF", transparency=1)
        self.assertTrue(near(thumbnail(data, "image/gif").getpixel((90, 60)), RED))

    def test_blank_thumbnails(self) -> None:
        """
        As Mailpit: a part that is not an image, bytes that do not decode,
        and an image over the pixel limit get a blank white thumbnail.
        """
        real = encoded(Image.new("RGB", (300, 200), RED))
        for data, content_type, options in [
            (real, "application/pdf", {}),
            (b"not an image at all", "image/png", {}),
            (real[:60], "image/png", {}),
            (real, "image/png", {"max_pixels": 300 * 200 - 1}),
        ]:
            image = thumbnail(data, content_type, **options)
            self.assertEqual(image.getextrema(), ((255, 255),) * 3, content_type)
        self.assertTrue(near(thumbnail(real, "IMAGE/PNG").getpixel((90, 60)), RED))

    def test_content_disposition(self) -> None:
        """
        The file name goes into the header without quotes, backslashes or
        line breaks.
        """
        self.assertEqual(content_disposition("logo.png"), 'filename="logo.png"')
        self.assertEqual(
            content_disposition('a"b\\c\r\nX: y.png'), 'filename="abcX: y.png"'
        )


class PillowMissingTestCase(SynchronousTestCase):
    def test_reason(self) -> None:
        """
        Without Pillow there is a reason to answer with, and making a
        thumbnail raises L{ThumbnailUnavailable} with it; with Pillow there
        is none.
        """
        self.assertIsNone(thumbnail_unavailable())
        with mock.patch.dict(sys.modules, {"PIL": None}):
            self.assertEqual(thumbnail_unavailable(), PILLOW_MISSING)
            with self.assertRaises(ThumbnailUnavailable) as caught:
                make_thumbnail(b"x", "image/png")
        self.assertEqual(str(caught.exception), PILLOW_MISSING)
        self.assertIn("Pillow", PILLOW_MISSING)
