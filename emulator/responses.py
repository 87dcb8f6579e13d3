"""How Discord's API answers: JSON bodies with its exact headers, "Invalid Form Body" errors for bad
parameters, the usual 404 bodies, and the Cloudflare page of a banned IP.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

JSON_HEADERS = {"Content-Type": "application/json", "Via": "1.1 google"}
HTTP_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 504: "Gateway Timeout"}
BAN_PAGE = """<!DOCTYPE html>
<html class="no-js" lang="en-US"><head>
<title>Access denied | discord.com used Cloudflare to restrict access</title>
<meta charset="UTF-8" /></head><body><div id="cf-wrapper"><div id="cf-error-details" class="p-0">
<header class="mx-auto pt-10 lg:pt-6 lg:px-8 w-240 lg:w-full mb-15 antialiased">
<h1 class="inline-block md:block mr-2 md:mb-2 font-light text-60 md:text-3xl text-black-dark leading-tight">
<span data-translate="error">Error</span><span>1015</span></h1>
<h2 class="text-gray-600 leading-1.3 text-3xl lg:text-2xl font-light">You are being rate limited</h2></header>
<section class="w-240 lg:w-full mx-auto mb-8 lg:px-8"><div id="what-happened-section" class="w-1/2 md:w-full">
<h2 class="text-3xl leading-tight font-normal mb-4 text-black-dark antialiased">What happened?</h2>
<p>The owner of this website (discord.com) has banned you temporarily from accessing this website.</p>
</div></section></div></div></body></html>
"""


def json_response(status: int, body: object, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response as Discord sends it (`body` may already be encoded JSON bytes)."""
    data = (
        body
        if isinstance(body, bytes)
        else json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    )
    return web.Response(status=status, body=data, headers={**(headers or {}), **JSON_HEADERS})


def form_error(field: str, code: str, message: str) -> tuple[int, Any]:
    errors = {field: {"_errors": [{"code": code, "message": message}]}}
    return 400, {"code": 50035, "errors": errors, "message": "Invalid Form Body"}


class BadFormError(Exception):
    def __init__(self, field: str, code: str, message: str) -> None:
        super().__init__(message)
        self.answer = form_error(field, code, message)


def snowflake_field(field: str, value: str) -> int:
    """A path or query parameter that must be a snowflake (else Discord's 400 for `field`)."""
    if value.isdigit() and int(value) < 2**64:
        return int(value)
    raise BadFormError(field, "NUMBER_TYPE_COERCE", f'Value "{value}" is not snowflake.')


def int_field(field: str, value: str, low: int, high: int) -> int:
    """A query parameter that must be an integer in [low, high] (else Discord's 400 for `field`)."""
    try:
        number = int(value)
    except ValueError:
        raise BadFormError(field, "NUMBER_TYPE_COERCE", f'Value "{value}" is not int.') from None
    if number < low:
        raise BadFormError(field, "NUMBER_TYPE_MIN", f"int value should be greater than or equal to {low}.")
    if number > high:
        raise BadFormError(field, "NUMBER_TYPE_MAX", f"int value should be less than or equal to {high}.")
    return number


UNKNOWN_CHANNEL = (404, {"message": "Unknown Channel", "code": 10003})
UNKNOWN_GUILD = (404, {"message": "Unknown Guild", "code": 10004})
UNKNOWN_MESSAGE = (404, {"message": "Unknown Message", "code": 10008})
