"""The card QR code as an image: PNG or SVG bytes for the citizen's page (DESIGN.md §6), and
the code read back from a photo or a screenshot (the counter page, ``onecard card verify``).

ISO/IEC 18004 choices: error-correction level Q (a quarter of the code may be smudged or
covered, what a phone screen under a scratched gate window needs), alphanumeric mode (a token
is ``OC1:`` plus Base45 text, all of it in the alphanumeric set, so 5.5 bits a character
instead of the 8 of byte mode: a smaller code that scans from further away), and the
4-module quiet zone the standard requires. Nothing is written to disk.
"""

from __future__ import annotations

import io

import qrcode
import qrcode.image.svg
import zxingcpp
from PIL import Image, UnidentifiedImageError
from qrcode.image.pil import PilImage
from qrcode.util import MODE_ALPHA_NUM, QRData

from onecard.card.base45 import ALPHABET
from onecard.card.token import MAX_TOKEN_LENGTH, PREFIX
from onecard.core.errors import InvalidInput

ERROR_CORRECTION = qrcode.constants.ERROR_CORRECT_Q
QUIET_ZONE_MODULES = 4
_ALPHANUMERIC = frozenset(ALPHABET)  # Base45's alphabet is exactly QR's alphanumeric set
MAX_IMAGE_BYTES = 10 * 1024 * 1024  # a phone's photo, with room to spare
MAX_IMAGE_PIXELS = 50_000_000  # a 50-megapixel camera; more is a decompression bomb


def qr_code(token: str) -> qrcode.QRCode:
    """The QR code of ``token``, in one alphanumeric segment, at level Q."""
    if not isinstance(token, str):
        raise TypeError("a token is text")
    if not token.startswith(PREFIX) or len(token) > MAX_TOKEN_LENGTH:
        raise ValueError("not a card token")
    if not _ALPHANUMERIC.issuperset(token):
        raise ValueError("a card token holds QR alphanumeric characters only")
    code = qrcode.QRCode(error_correction=ERROR_CORRECTION, border=QUIET_ZONE_MODULES)
    code.add_data(QRData(token.encode("ascii"), mode=MODE_ALPHA_NUM))
    code.make(fit=True)
    return code


def render_png(token: str, *, module_pixels: int = 8) -> bytes:
    """A black-on-white PNG, ``module_pixels`` pixels per module."""
    if not 1 <= module_pixels <= 64:
        raise ValueError("module_pixels is 1 to 64")
    code = qr_code(token)
    code.box_size = module_pixels
    buffer = io.BytesIO()
    code.make_image(image_factory=PilImage).save(buffer)
    return buffer.getvalue()


def render_svg(token: str) -> bytes:
    """An SVG drawing the dark modules as one path; it scales to any size (``viewBox``)."""
    code = qr_code(token)
    image = code.make_image(image_factory=qrcode.image.svg.SvgPathImage)
    return image.to_string(encoding="utf-8")


def read_code(image: bytes) -> str:
    """The one card code in an image of its QR code (PNG, JPEG, … what Pillow opens), read
    with zxing-cpp. Raises :class:`InvalidInput` (``image_too_large``, ``image_unreadable``,
    ``image_without_code``, ``image_many_codes``); the code itself is not checked here."""
    if len(image) > MAX_IMAGE_BYTES:
        raise InvalidInput("the image is larger than 10 MB", code="image_too_large")
    try:
        with Image.open(io.BytesIO(image)) as opened:
            # The size comes from the header, before any decoding; the bound is below Pillow's
            # own decompression-bomb limits, so they never fire (their warning is global state,
            # not something to toggle per request in a thread pool).
            width, height = opened.size
            if width * height > MAX_IMAGE_PIXELS:
                raise InvalidInput("the image has too many pixels", code="image_too_large")
            found = zxingcpp.read_barcodes(
                opened.convert("L"), formats=zxingcpp.BarcodeFormat.QRCode
            )
    except (UnidentifiedImageError, OSError, ValueError):
        raise InvalidInput(
            "the file is not an image that can be read", code="image_unreadable"
        ) from None
    codes = {result.text for result in found if result.text.startswith(PREFIX)}
    if not codes:
        raise InvalidInput("no card QR code was found in the image", code="image_without_code")
    if len(codes) > 1:
        raise InvalidInput("the image holds more than one card QR code", code="image_many_codes")
    return codes.pop()
