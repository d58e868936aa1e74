"""Images in the playground, in Debian's headless Chromium against the real server: a file
picked and one pasted become image parts that reach the provider (the fake OpenAI records
what it was sent), with thumbnails in the composer and the transcript; a file that is not
an image, or too large, is refused in the page before anything is sent; a refusal of the
server (an image over its MAX_IMAGE_BYTES) is shown with the part it names."""

from __future__ import annotations

import base64
import random
import struct
import zlib
from pathlib import Path

from playwright.async_api import Browser, Page, expect

from engine.settings import Settings
from tests import test_playground
from tests.conftest import Server, start_server, stop_server
from tests.provider_env import Fakes, provider_server
from tests.test_playground import ARTIFACTS, WAIT_MS, open_page, wait_status

browser = test_playground.browser  # the Chromium fixture

# The smallest GIF: one white pixel.
GIF = bytes.fromhex(
    "47494638396101000100800000ffffff00000021f90401000000002c00000000010001000002024401003b"
)


def png(width: int, height: int, *, noise: bool = False) -> bytes:
    """A real PNG (RGB): a gradient, or random pixels that do not compress."""
    rng = random.Random(7)
    rows = b"".join(
        b"\x00"
        + bytes(
            rng.randrange(256) if noise else (x * 255 // width + c * 40) % 256
            for x in range(width)
            for c in range(3)
        )
        for _ in range(height)
    )

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


async def connected(browser: Browser, server: Server) -> Page:
    key = await server.new_key()
    page = await open_page(browser, f"{server.url}/#key={key}")
    await expect(page.locator("#conn")).to_have_text("connected", timeout=WAIT_MS)
    return page


async def paste(page: Page, data: bytes, name: str, media_type: str) -> None:
    """A paste of a file into the message box, as a screenshot pasted from the clipboard."""
    await page.evaluate(
        """([b64, name, type]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const data = new DataTransfer();
            data.items.add(new File([bytes], name, { type }));
            document.getElementById("message").dispatchEvent(new ClipboardEvent("paste",
                { clipboardData: data, bubbles: true, cancelable: true }));
        }""",
        [base64.b64encode(data).decode(), name, media_type],
    )


async def test_picked_and_pasted_images_reach_the_provider(
    settings: Settings, fk: Fakes, browser: Browser, tmp_path: Path
) -> None:
    picture = png(24, 16)
    path = tmp_path / "chart.png"
    path.write_bytes(picture)
    async with provider_server(settings, fk) as server:
        page = await connected(browser, server)
        await page.fill("#model", "openai/m~tokens=3")
        await page.set_input_files("#image-input", str(path))
        await paste(page, GIF, "clip.gif", "image/gif")
        thumbs = page.locator("#attachments img.thumb")
        await expect(thumbs).to_have_count(2)
        b64 = base64.b64encode(picture).decode()
        assert await thumbs.first.get_attribute("src") == f"data:image/png;base64,{b64}"
        assert await thumbs.first.get_attribute("alt") == "chart.png"
        assert await thumbs.first.evaluate("img => img.complete && img.naturalWidth") == 24
        # one removed and attached again: the order is the order of attaching
        await page.get_by_role("button", name="Remove chart.png").click()
        await expect(thumbs).to_have_count(1)
        await page.set_input_files("#image-input", str(path))
        await expect(thumbs).to_have_count(2)
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "playground-images.png"), full_page=True)

        await page.fill("#message", "What is in these?")
        await page.press("#message", "Enter")
        answer = page.locator("li.turn.assistant").last
        await expect(answer).to_have_count(1, timeout=WAIT_MS)
        task_id = await answer.get_attribute("data-task-id")
        assert task_id
        await wait_status(page, task_id, "completed")
        await expect(page.locator("#attachments img")).to_have_count(0)
        await expect(page.locator("li.turn.user .images img.thumb")).to_have_count(2)

        sent = fk.openai.requests[-1]["messages"][-1]
        assert sent["role"] == "user"
        assert sent["content"] == [
            {"type": "text", "text": "What is in these?"},
            {
                "type": "image_url",
                "image_url": {"url": f"data:image/gif;base64,{base64.b64encode(GIF).decode()}"},
            },
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64}"}},
        ]

        # After a reload the conversation comes back from the server with its images.
        await page.reload()
        await expect(page.locator("#conn")).to_have_text("connected", timeout=WAIT_MS)
        await page.locator("#runs li button").first.click()
        await expect(page.locator("li.turn.user .images img.thumb")).to_have_count(2)
        await expect(page.locator("li.turn.user .text")).to_have_text("What is in these?")
        assert page.errors == []  # type: ignore[attr-defined]


async def test_what_is_not_an_image_or_too_large_is_refused_in_the_page(
    server: Server, browser: Browser, tmp_path: Path
) -> None:
    page = await connected(browser, server)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    fake = tmp_path / "photo.png"  # named like an image, holding text
    fake.write_text("<svg>not really</svg>")
    huge = tmp_path / "huge.png"
    huge.write_bytes(png(4, 4) + b"\0" * (5 * 1024 * 1024))
    status = page.locator("#attach-status")

    await page.set_input_files("#image-input", str(notes))
    await expect(status).to_have_text(
        "“notes.txt” is not an image the models take (PNG, JPEG, GIF or WebP)."
    )
    await page.set_input_files("#image-input", str(fake))
    await expect(status).to_contain_text("“photo.png” is not an image")
    await page.set_input_files("#image-input", str(huge))
    await expect(status).to_have_text("“huge.png” is 5.0 MB: an image may be at most 5.0 MB.")
    await expect(page.locator("#attachments img")).to_have_count(0)

    # Nothing was sent: the page asked the server for no task.
    assert not any("/v1/executions" in u for u in page.urls)  # type: ignore[attr-defined]
    await page.fill("#message", "")
    await page.click("#send")
    await expect(page.locator("#error")).to_have_text("Type a message, or pick a prompt.")
    await expect(page.locator("li.turn")).to_have_count(0)

    # A good image after the refusals clears the message.
    good = tmp_path / "ok.png"
    good.write_bytes(png(2, 2))
    await page.set_input_files("#image-input", str(good))
    await expect(page.locator("#attachments img")).to_have_count(1)
    await expect(status).to_be_hidden()


async def test_an_image_the_server_refuses_shows_its_error(
    settings: Settings, browser: Browser, tmp_path: Path
) -> None:
    server = await start_server(settings.model_copy(update={"max_image_bytes": 1000}))
    try:
        page = await connected(browser, server)
        big = tmp_path / "noise.png"
        big.write_bytes(png(32, 32, noise=True))
        assert len(big.read_bytes()) > 1000
        await page.set_input_files("#image-input", str(big))
        await expect(page.locator("#attachments img")).to_have_count(1)
        await page.fill("#message", "Look")
        await page.press("#message", "Enter")
        error = page.locator("#error")
        await expect(error).to_contain_text("payload_too_large", timeout=WAIT_MS)
        await expect(error).to_contain_text(
            "messages.0.content.1.data: at most 1000 bytes per image"
        )
        # the attachment stays, to be removed or replaced; nothing ran
        await expect(page.locator("#attachments img")).to_have_count(1)
        await expect(page.locator("li.turn")).to_have_count(0)
    finally:
        await stop_server(server)
