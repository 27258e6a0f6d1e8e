"""
JPEG thumbnails of image attachments, as Mailpit serves them on
C{GET /api/v1/message/{ID}/part/{PartID}/thumb}: L{make_thumbnail}.

Mailpit's rules (server/apiv1/thumbnails.go): 180x120, JPEG quality 70;
the image turned upright by its EXIF orientation; one smaller than 180x120
in either direction is scaled down to fit (never enlarged), any other is
scaled and cropped around its centre to fill the frame; either way it is
laid on white at the centre, so a transparent image has a white, not a
black, background.  A part that is not an image, cannot be decoded or
declares more than 20 megapixels gets a blank white thumbnail, as Mailpit
answers.

Pillow does the imaging and is optional: without it
L{thumbnail_unavailable} gives the reason, which the route answers with
404.

How it is meant to be hooked in (the C{/thumb} resource)::

    reason = thumbnail_unavailable()
    if reason is not None:
        -> 404, text/plain, reason
    part = ...the attachment PartID of message ID...   (none: as for /part)
    -> 200, Content-Type: image/jpeg,
       Content-Disposition: content_disposition(part.filename or part.content_id),
       body make_thumbnail(part.content, part.content_type)
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from twisted_netlab.errors import NetlabError

#: Mailpit's thumbnail size, width and height.
THUMBNAIL_WIDTH, THUMBNAIL_HEIGHT = 180, 120
#: Images declaring more pixels get the blank thumbnail without being decoded.
MAX_PIXELS = 20_000_000
JPEG_QUALITY = 70
PILLOW_MISSING = "thumbnails need Pillow, which is not installed (pip install Pillow)"


class ThumbnailUnavailable(NetlabError):
    """
    Thumbnails cannot be made here (Pillow is missing): the route answers
    404 with C{str(error)}.
    """


def _pillow() -> tuple[Any, Any]:
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise ThumbnailUnavailable(PILLOW_MISSING) from None
    return Image, ImageOps


def thumbnail_unavailable() -> str | None:
    """
    Why no thumbnail can be made here, or L{None} when they can.
    """
    try:
        _pillow()
    except ThumbnailUnavailable as e:
        return str(e)
    return None


def _jpeg(image: Any) -> bytes:
    out = BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def _blank(pil_image: Any) -> bytes:
    return _jpeg(pil_image.new("RGB", (THUMBNAIL_WIDTH, THUMBNAIL_HEIGHT), "white"))


def make_thumbnail(
    content: bytes, content_type: str, *, max_pixels: int = MAX_PIXELS
) -> bytes:
    """
    The JPEG thumbnail of an attachment with these bytes and this
    Content-Type (blank when it is not an image Pillow can read).

    @raise ThumbnailUnavailable: Pillow is missing.
    """
    pil_image, pil_ops = _pillow()
    width, height = THUMBNAIL_WIDTH, THUMBNAIL_HEIGHT
    if not content_type.lower().startswith("image/"):
        return _blank(pil_image)
    try:
        with pil_image.open(BytesIO(content)) as opened:
            if opened.width * opened.height > max_pixels:
                return _blank(pil_image)
            upright = pil_ops.exif_transpose(opened)
            picture = upright.convert("RGBA")
    except (OSError, ValueError, SyntaxError, pil_image.DecompressionBombError):
        return _blank(pil_image)
    lanczos = pil_image.Resampling.LANCZOS
    if picture.width < width or picture.height < height:
        picture.thumbnail((width, height), lanczos)  # fit, never enlarge
    else:
        picture = pil_ops.fit(picture, (width, height), lanczos, centering=(0.5, 0.5))
    canvas = pil_image.new("RGB", (width, height), "white")
    # Centred as Mailpit's imaging.OverlayCenter computes it.
    where = (width // 2 - picture.width // 2, height // 2 - picture.height // 2)
    canvas.paste(picture, where, picture)
    return _jpeg(canvas)


def content_disposition(filename: str) -> str:
    """
    Mailpit's C{Content-Disposition} for a thumbnail, C{filename="..."},
    with the name made safe for a header (no quotes, backslashes or
    control characters).
    """
    safe = "".join(
        c for c in filename if c not in '"\\' and ord(c) >= 32 and ord(c) != 127
    )
    return f'filename="{safe}"'


__all__ = [
    "JPEG_QUALITY",
    "MAX_PIXELS",
    "PILLOW_MISSING",
    "THUMBNAIL_HEIGHT",
    "THUMBNAIL_WIDTH",
    "ThumbnailUnavailable",
    "content_disposition",
    "make_thumbnail",
    "thumbnail_unavailable",
]
