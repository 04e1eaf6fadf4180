"""Greedy text generation against a running server (sglang /generate or OpenAI /v1/completions)."""

from __future__ import annotations

from typing import Any

import requests

from scripts.gates.errors import RequestFailed


def _explain(url: str, exc: requests.RequestException) -> str:
    if isinstance(exc, requests.ConnectionError):
        return (
            f"cannot reach the server at {url} ({type(exc).__name__}); is it running and is "
            "server.host/server.port right?"
        )
    if isinstance(exc, requests.Timeout):
        return f"request to {url} timed out; raise accuracy.request_timeout_s or check the server"
    return f"request to {url} failed: {exc}"


def generate(
    base_url: str,
    prompt: str,
    *,
    api: str,
    max_new_tokens: int,
    stop: list[str],
    timeout_s: float,
    model: str = "default",
    session: requests.Session | None = None,
) -> tuple[str, int]:
    """Return (completion text, completion tokens or -1). Temperature 0 = greedy."""
    if api == "generate":
        url = base_url + "/generate"
        payload: dict[str, Any] = {
            "text": prompt,
            "sampling_params": {
                "temperature": 0.0,
                "max_new_tokens": max_new_tokens,
                "stop": stop,
            },
        }
    else:
        url = base_url + "/v1/completions"
        payload = {
            "model": model,
            "prompt": prompt,
            "temperature": 0.0,
            "max_tokens": max_new_tokens,
            "stop": stop,
        }
    post = session.post if session is not None else requests.post
    try:
        r = post(url, json=payload, timeout=timeout_s)
    except requests.RequestException as exc:
        raise RequestFailed(_explain(url, exc)) from exc
    if r.status_code != 200:
        body = r.text.strip().replace("\n", " ")[:300]
        raise RequestFailed(
            f"server returned HTTP {r.status_code} for POST {url}: {body or '(empty body)'}; "
            "see the server log"
        )
    try:
        data = r.json()
        if api == "generate":
            text = data["text"]
            tokens = int(data.get("meta_info", {}).get("completion_tokens", -1))
        else:
            text = data["choices"][0]["text"]
            tokens = int(data.get("usage", {}).get("completion_tokens", -1))
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise RequestFailed(
            f"unexpected response shape from POST {url}: {r.text[:200]!r} ({exc!r})"
        ) from exc
    if not isinstance(text, str):
        raise RequestFailed(f"unexpected response from POST {url}: text is {type(text).__name__}")
    return text, tokens
