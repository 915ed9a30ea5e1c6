"""The ``openai`` backend: OpenAI and OpenAI-compatible servers (vLLM, llama.cpp, Ollama).

Requests go through the official ``openai`` SDK (async client, bounded concurrency). Retries
are tenacity's alone (the SDK's own are off): jittered exponential backoff on rate limits
(honouring ``Retry-After`` up to the longer of ``max_backoff`` and ``timeout``), timeouts,
connection errors, malformed responses and 5xx; any other 4xx raises at once with the
server's message. Every request, ``/models`` included, reads the response body as JSON itself
and checks its shape, so a body that is not the expected JSON is a malformed response (retried,
then a :class:`~iclkit.errors.BackendError`) on every path. The final error lists what each
attempt met. Responses are cached in SQLite by request (see
:mod:`iclkit.backends.response_cache`), so a re-run sends no requests.

Label scoring:

* ``mode="completion"``: completions with ``echo`` and ``logprobs`` on ``prompt + candidate``;
  the candidate's score sums the log-probabilities of every echoed token that holds at least
  one character of the candidate.
* ``scoring="top_logprobs"`` (the only path in ``mode="chat"``, an option in completion mode):
  one request per prompt for the first answer token with its ``top_logprobs``; each label is
  scored by the log-probability of the longest returned token it starts with (whitespace-only
  tokens are skipped; in chat mode leading spaces are ignored). Labels must start with distinct
  first tokens; a label whose first token is not among those returned gets the lowest
  log-probability returned (an upper bound); ``n_tokens`` is 1. A prompt none of whose labels
  is among them gets that bound for every label (a tie), and a warning on the
  ``iclkit.backends`` logger counts such prompts; the other prompts are scored as usual.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import openai
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)
from tqdm.auto import tqdm

from iclkit.backends.base import Backend, ContinuationScore, check_candidates
from iclkit.backends.response_cache import ResponseCache
from iclkit.bundled_models import cache_dir
from iclkit.errors import BackendError, ConfigError
from iclkit.prompt import Prompt
from iclkit.validation import check_int

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_T = TypeVar("_T")
logger = logging.getLogger("iclkit.backends")
_NO_LOGPROBS_FIX = (
    "Fix: use mode='chat' (top_logprobs, for labels with distinct first tokens) if the server "
    "supports it, or classify with iclkit.inference.GenerationClassifier (generation with "
    "answer parsing), which needs no log-probabilities"
)


class _MalformedResponse(Exception):
    """The server answered 2xx with a body that is not the expected JSON."""


def _body(raw: Any) -> dict[str, Any]:
    """The JSON object of a raw SDK response.

    Raises:
        _MalformedResponse: if the body is not a JSON object.
    """
    try:
        data = json.loads(raw.text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise _MalformedResponse(f"the response is not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise _MalformedResponse(f"the response is not a JSON object: {raw.text[:200]!r}")
    return data


def _check_choice(data: dict[str, Any], endpoint: str) -> dict[str, Any]:
    """``data`` if its first choice has the text (or chat message) the endpoint returns."""
    choices = data.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    if endpoint == "chat":
        message = first.get("message") if isinstance(first, dict) else None
        ok = isinstance(message, dict) and isinstance(message.get("content"), str | None)
    else:
        ok = isinstance(first, dict) and isinstance(first.get("text"), str)
    if not ok:
        raise _MalformedResponse(f"the response has no {endpoint} choice: {str(data)[:200]!r}")
    return data


def _model_ids(data: dict[str, Any]) -> list[str]:
    """The model ids of a ``/models`` listing."""
    models = data.get("data")
    if not isinstance(models, list) or not all(
        isinstance(m, dict) and isinstance(m.get("id"), str) for m in models
    ):
        raise _MalformedResponse(f"the model list is not a list of models: {str(data)[:200]!r}")
    return sorted(m["id"] for m in models)


def _retryable(error: BaseException) -> bool:
    if isinstance(error, (openai.APIConnectionError, _MalformedResponse)):
        return True  # APITimeoutError is an APIConnectionError
    if isinstance(error, openai.APIStatusError):
        return error.status_code in (408, 429) or error.status_code >= 500
    return False


def _server_message(error: openai.APIStatusError) -> str:
    """The server's own error message (``{"error": {"message": ...}}``), else the SDK's."""
    body = error.body
    inner = body.get("error", body) if isinstance(body, dict) else None
    if isinstance(inner, dict) and isinstance(inner.get("message"), str):
        return str(inner["message"])
    return str(error.message)


def _attempt(error: BaseException, timeout: float) -> str:
    """What one failed attempt met, in a few words."""
    if isinstance(error, openai.APIStatusError):
        return f"HTTP {error.status_code} ({_server_message(error)[:120]})"
    if isinstance(error, openai.APITimeoutError):
        return f"timed out after {timeout} s"
    if isinstance(error, openai.APIConnectionError):
        return f"no connection ({error})"
    return f"malformed response ({str(error)[:120]})"


def _retry_after(error: BaseException | None) -> float | None:
    """Seconds the server asked us to wait (``Retry-After`` / ``retry-after-ms``), if any."""
    if not isinstance(error, openai.APIStatusError):
        return None
    headers = error.response.headers
    if "retry-after-ms" in headers:
        try:
            return float(headers["retry-after-ms"]) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - datetime.now(timezone.utc)).total_seconds())


class OpenAIBackend(Backend):
    """A model behind the OpenAI API or an OpenAI-compatible server.

    Args:
        model: the model name the server knows.
        base_url: the API root (``http://127.0.0.1:8000/v1``); default ``$OPENAI_BASE_URL``,
            else OpenAI's.
        api_key: default ``$OPENAI_API_KEY``; a placeholder is sent to other servers when
            neither is set. Never cached, logged or part of :attr:`identity`.
        mode: ``"completion"`` (text prompts, echo scoring) or ``"chat"`` (messages,
            ``top_logprobs`` scoring).
        concurrency: most requests in flight at once.
        max_retries: retries after the first attempt of a request.
        timeout: seconds before one attempt times out.
        backoff: base of the jittered exponential wait between retries, in seconds.
        max_backoff: longest wait between retries when the server names none. A server's
            ``Retry-After`` is honoured up to the longer of ``max_backoff`` and ``timeout``.
        cache: keep responses in an SQLite file; ``cache_path`` defaults to
            ``<iclkit cache>/openai-responses.sqlite``.
        logprobs: set ``False`` for servers without log-probabilities; :meth:`score` then
            raises at once naming the alternative.
        scoring: ``"echo"`` or ``"top_logprobs"``; default ``"echo"`` in completion mode and
            ``"top_logprobs"`` in chat mode (the only path there).
        top_logprobs: alternatives asked for in ``top_logprobs`` scoring.
        tokenizer: the model's tokenizer for token budgets, read offline: a local Hugging Face
            tokenizer folder, or ``"gemma-3-270m"`` for the bundled model's (the model the
            bundled llama.cpp server runs). Without one, token budgets count
            whitespace-separated words (logged once).

    Raises:
        ConfigError: for an unknown ``mode`` or ``scoring``, echo scoring in chat mode, or a
            non-positive ``concurrency``.
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        mode: Literal["completion", "chat"] = "completion",
        concurrency: int = 8,
        max_retries: int = 5,
        timeout: float = 60.0,
        backoff: float = 0.5,
        max_backoff: float = 20.0,
        cache: bool = True,
        cache_path: str | Path | None = None,
        logprobs: bool = True,
        scoring: Literal["echo", "top_logprobs"] | None = None,
        top_logprobs: int = 20,
        tokenizer: str | None = None,
    ) -> None:
        if mode not in ("completion", "chat"):
            raise ConfigError(f"mode must be 'completion' or 'chat', got {mode!r}")
        if scoring not in (None, "echo", "top_logprobs"):
            raise ConfigError(f"scoring must be 'echo' or 'top_logprobs', got {scoring!r}")
        if mode == "chat" and scoring == "echo":
            raise ConfigError(
                "chat completions cannot echo the prompt; use scoring='top_logprobs' with "
                "mode='chat', or mode='completion' for echo scoring"
            )
        self.model = model
        self.base_url = base_url
        self.api_key = api_key
        self.mode = mode
        self.concurrency = check_int("concurrency", concurrency, minimum=1)
        self.max_retries = max_retries
        self.timeout = timeout
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.cache = cache
        self.cache_path = cache_path
        self.logprobs = logprobs
        self.scoring = scoring or ("top_logprobs" if mode == "chat" else "echo")
        self.top_logprobs = top_logprobs
        self.tokenizer = tokenizer
        self.requests_sent_ = 0
        self._checked_model = False

    def __repr__(self) -> str:
        # The API key stays out of reprs, logs and tracebacks.
        return f"OpenAIBackend(model={self.model!r}, base_url={self._base_url()!r})"

    @property
    def identity(self) -> str:
        """``openai:<model>@<base_url>`` (no credentials)."""
        return f"openai:{self.model}@{self._base_url()}"

    def count_tokens(self, text: str) -> int:
        """The number of tokens in ``text`` by the ``tokenizer`` option, read offline.

        Without a ``tokenizer`` it counts whitespace-separated words (and logs once that it
        does): OpenAI's own tokenizers cannot be loaded offline.

        Raises:
            ConfigError: if the tokenizer folder cannot be read.
        """
        if self.tokenizer is None:
            return super().count_tokens(text)
        from iclkit.bundled_models import load_tokenizer

        return len(load_tokenizer(self.tokenizer)(text).input_ids)

    def _base_url(self) -> str:
        return (self.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")

    def _key(self) -> str:
        key = self.api_key or os.environ.get("OPENAI_API_KEY")
        if key:
            return key
        if self._base_url() == DEFAULT_BASE_URL:
            raise BackendError(
                "no OpenAI API key. Fix: set OPENAI_API_KEY or pass api_key=..., or point "
                "base_url at an OpenAI-compatible server"
            )
        return "no-key"  # local servers ignore it; the SDK insists on one

    def _cache(self) -> ResponseCache | None:
        if not self.cache:
            return None
        if not hasattr(self, "cache_"):
            path = self.cache_path or cache_dir() / "openai-responses.sqlite"
            self.cache_ = ResponseCache(path)
        return self.cache_

    # -- public operations ----------------------------------------------------------------------

    def generate(
        self,
        prompts: Sequence[Prompt],
        *,
        max_tokens: int = 16,
        temperature: float = 0.0,
        seed: int | None = None,
        stop: Sequence[str] | None = None,
    ) -> list[str]:
        """Generate one completion (``mode="completion"``) or chat reply per prompt.

        Sampled requests without a ``seed`` are not cached (a re-run samples again).

        Raises:
            BackendError: if the server cannot be reached, does not serve the model, rejects
                the request (with the server's message) or keeps failing after the retries.
        """
        params: dict[str, Any] = {"max_tokens": max_tokens, "temperature": temperature}
        if seed is not None:
            params["seed"] = seed
        if stop:
            params["stop"] = list(stop)
        requests = [self._request(prompt, params) for prompt in prompts]
        cacheable = temperature == 0 or seed is not None
        responses = self._send(requests, cacheable=cacheable)
        if self.mode == "chat":
            return [str(r["choices"][0]["message"]["content"] or "") for r in responses]
        return [str(r["choices"][0]["text"]) for r in responses]

    def score(
        self, prompts: Sequence[Prompt], candidates: Sequence[Sequence[str]]
    ) -> list[list[ContinuationScore]]:
        """Score the candidate continuations of each prompt (see the module docstring).

        Raises:
            BackendError: if the server gives no log-probabilities (the message names the
                alternatives), the labels' first tokens are not distinct (chat), a candidate
                tokenizes to nothing, or a request fails as in :meth:`generate`.
        """
        check_candidates(prompts, candidates)
        if not self.logprobs:
            raise BackendError(
                f"{self.identity} was configured without log-probabilities (logprobs=False) "
                f"and cannot score labels. {_NO_LOGPROBS_FIX}"
            )
        if self.scoring == "top_logprobs":
            return self._score_first_token(prompts, candidates)
        return self._score_echo(prompts, candidates)

    def next_token_logprobs(self, prompts: Sequence[Prompt], top: int) -> list[dict[str, float]]:
        """The answer's first token with its ``top`` alternatives (``top_logprobs``) per prompt.

        Servers cap ``top`` (OpenAI at 20; llama.cpp's server returns more).

        Raises:
            BackendError: if the server gives no log-probabilities, or a request fails as in
                :meth:`generate`.
        """
        check_int("top", top, minimum=1)
        if not self.logprobs:
            raise BackendError(
                f"{self.identity} was configured without log-probabilities (logprobs=False) "
                "and cannot return next-token distributions"
            )
        found = self._first_tokens(prompts, top)
        if any(not tokens for tokens in found):
            raise BackendError(
                f"{self.identity} returned no top log-probabilities (its server or model does "
                "not support them)"
            )
        return found

    # -- scoring paths --------------------------------------------------------------------------

    def _score_echo(
        self, prompts: Sequence[Prompt], candidates: Sequence[Sequence[str]]
    ) -> list[list[ContinuationScore]]:
        params = {"max_tokens": 1, "temperature": 0.0, "echo": True, "logprobs": 0}
        pairs = [
            (p.text, c) for p, options in zip(prompts, candidates, strict=True) for c in options
        ]
        requests = [
            {"endpoint": "completions", "prompt": text + candidate, **params}
            for text, candidate in pairs
        ]
        flat = iter(
            [
                self._echo_score(response, text, candidate)
                for response, (text, candidate) in zip(self._send(requests), pairs, strict=True)
            ]
        )
        return [[next(flat) for _ in options] for options in candidates]

    def _echo_score(self, response: dict[str, Any], text: str, candidate: str) -> ContinuationScore:
        logprobs = response["choices"][0].get("logprobs") or {}
        tokens = logprobs.get("tokens") or []
        offsets = logprobs.get("text_offset") or []
        values = logprobs.get("token_logprobs") or []
        if not tokens or len(tokens) != len(offsets) or len(tokens) != len(values):
            raise BackendError(
                f"{self.identity} returned no echoed prompt log-probabilities for a completion "
                f"with echo=True and logprobs (its server or model does not support echo "
                f"scoring). {_NO_LOGPROBS_FIX}"
            )
        end = len(text) + len(candidate)
        total, count = 0.0, 0
        for token, offset, value in zip(tokens, offsets, values, strict=True):
            if offset >= end:
                break  # the generated token after the echo
            if offset + len(token) > len(text):
                if value is None:
                    raise BackendError(
                        f"{self.identity} gave no log-probability for the first token of "
                        f"{candidate!r}: put at least one character of prompt before it"
                    )
                total += float(value)
                count += 1
        if count == 0:
            raise BackendError(
                f"the candidate continuation {candidate!r} tokenizes to nothing after the "
                f"prompt ({self.identity}). Fix: give every label a non-empty verbalization"
            )
        return ContinuationScore(logprob=total, n_tokens=count)

    def _score_first_token(
        self, prompts: Sequence[Prompt], candidates: Sequence[Sequence[str]]
    ) -> list[list[ContinuationScore]]:
        scored = [
            self._first_token_scores(top, options)
            for top, options in zip(
                self._first_tokens(prompts, self.top_logprobs), candidates, strict=True
            )
        ]
        ties = sum(not found for _, found in scored)
        if ties:
            logger.warning(
                "%s: for %d of %d prompts none of the labels is among the top %d first answer "
                "tokens; their labels got the same (lowest returned) log-probability. Fix: "
                "raise top_logprobs, use scoring='echo' (completion mode), or "
                "GenerationClassifier",
                self.identity,
                ties,
                len(prompts),
                self.top_logprobs,
            )
        return [scores for scores, _ in scored]

    def _first_tokens(self, prompts: Sequence[Prompt], top: int) -> list[dict[str, float]]:
        """The first answer token's ``top`` alternatives of each prompt (one request each)."""
        params: dict[str, Any] = {"max_tokens": 1, "temperature": 0.0}
        if self.mode == "chat":
            params |= {"logprobs": True, "top_logprobs": top}
        else:
            params |= {"logprobs": top}
        responses = self._send([self._request(prompt, params) for prompt in prompts])
        return [self._top_tokens(response) for response in responses]

    def _top_tokens(self, response: dict[str, Any]) -> dict[str, float]:
        """The first answer token's alternatives as ``{token: logprob}`` (empty if none)."""
        logprobs = response["choices"][0].get("logprobs") or {}
        if self.mode == "chat":
            content = logprobs.get("content") or []
            top = content[0].get("top_logprobs") or [] if content else []
            return {str(entry["token"]): float(entry["logprob"]) for entry in top}
        first = (logprobs.get("top_logprobs") or [None])[0] or {}
        return {str(token): float(value) for token, value in first.items()}

    def _first_token_scores(
        self, top: dict[str, float], candidates: Sequence[str]
    ) -> tuple[list[ContinuationScore], bool]:
        """The candidates' scores, and whether any candidate's first token was returned."""
        if not top:
            raise BackendError(
                f"{self.identity} returned no top log-probabilities for the answer's first "
                "token (its server or model does not support them). Fix: use "
                "mode='completion' with scoring='echo' if the server supports echo, or "
                "iclkit.inference.GenerationClassifier (generation with answer parsing)"
            )
        chat = self.mode == "chat"
        words = [candidate.lstrip() if chat else candidate for candidate in candidates]
        firsts: list[str | None] = []
        for word in words:
            pieces = [t for t in top if t.strip() and word.startswith(t.lstrip() if chat else t)]
            firsts.append(max(pieces, key=len) if pieces else None)
        for i, first in enumerate(firsts):
            for j in range(i):
                if first is not None and first == firsts[j]:
                    raise BackendError(
                        f"labels {words[j]!r} and {words[i]!r} start with the same token "
                        f"{first!r}, so top_logprobs scoring cannot tell them apart. Fix: use "
                        "scoring='echo' (completion mode), labels with distinct first words, "
                        "or GenerationClassifier"
                    )
        floor = min(top.values())
        scores = [
            ContinuationScore(logprob=top[first] if first is not None else floor, n_tokens=1)
            for first in firsts
        ]
        return scores, any(first is not None for first in firsts)

    # -- transport ------------------------------------------------------------------------------

    def _request(self, prompt: Prompt, params: dict[str, Any]) -> dict[str, Any]:
        if self.mode == "chat":
            messages = [message.model_dump() for message in prompt.messages]
            return {"endpoint": "chat", "messages": messages, **params}
        return {"endpoint": "completions", "prompt": prompt.text, **params}

    def _send(
        self, requests: Sequence[dict[str, Any]], *, cacheable: bool = True
    ) -> list[dict[str, Any]]:
        """Responses to ``requests`` (as JSON dicts): from the cache, else from the server."""
        keyed = [
            {**request, "model": self.model, "base_url": self._base_url()} for request in requests
        ]
        cache = self._cache() if cacheable else None
        responses: list[dict[str, Any] | None] = [
            cache.get(request) if cache else None for request in keyed
        ]
        missing = [i for i, response in enumerate(responses) if response is None]
        if missing:
            fetched = _run_sync(lambda: self._fetch([keyed[i] for i in missing], cache))
            for i, response in zip(missing, fetched, strict=True):
                responses[i] = response
        return [response for response in responses if response is not None]

    async def _fetch(
        self, requests: Sequence[dict[str, Any]], cache: ResponseCache | None
    ) -> list[dict[str, Any]]:
        client = openai.AsyncOpenAI(
            base_url=self._base_url(),
            api_key=self._key(),
            max_retries=0,
            timeout=self.timeout,
        )
        limit = asyncio.Semaphore(self.concurrency)
        progress = tqdm(total=len(requests), desc="requests", disable=len(requests) <= 32)

        async def one(request: dict[str, Any]) -> dict[str, Any]:
            async with limit:
                response = await self._with_retries(lambda: self._call(client, request))
            if cache is not None:
                cache.put(request, response)
            progress.update()
            return response

        try:
            if not self._checked_model:
                await self._check_model(client)
            return list(await asyncio.gather(*(one(request) for request in requests)))
        finally:
            progress.close()
            await client.close()

    async def _call(self, client: openai.AsyncOpenAI, request: dict[str, Any]) -> dict[str, Any]:
        arguments = {k: v for k, v in request.items() if k not in ("endpoint", "base_url")}
        self.requests_sent_ += 1
        if request["endpoint"] == "chat":
            raw = await client.chat.completions.with_raw_response.create(**arguments)
        else:
            raw = await client.completions.with_raw_response.create(**arguments)
        return _check_choice(_body(raw), request["endpoint"])

    async def _served_models(self, client: openai.AsyncOpenAI) -> list[str]:
        return _model_ids(_body(await client.models.with_raw_response.list()))

    async def _check_model(self, client: openai.AsyncOpenAI) -> None:
        """Fail early, by name, when the server does not serve :attr:`model`."""
        try:
            served = await self._with_retries(lambda: self._served_models(client))
        except BackendError as error:
            if isinstance(error.__cause__, openai.APIStatusError):
                self._checked_model = True  # a server without /models: let requests decide
                return
            raise
        if served and self.model not in served:
            raise BackendError(
                f"model {self.model!r} is not served at {self._base_url()}; it serves: "
                f"{', '.join(served)}. Fix: pass one of those as model"
            )
        self._checked_model = True

    async def _with_retries(self, call: Callable[[], Awaitable[_T]]) -> _T:
        fallback = wait_random_exponential(multiplier=self.backoff, max=self.max_backoff)
        longest = max(self.max_backoff, self.timeout)
        failed: list[str] = []

        def wait(state: RetryCallState) -> float:
            asked = _retry_after(state.outcome.exception() if state.outcome else None)
            return min(asked, longest) if asked is not None else float(fallback(state))

        def record(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            if error is not None:
                failed.append(_attempt(error, self.timeout))

        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(_retryable),
                wait=wait,
                before_sleep=record,
                stop=stop_after_attempt(self.max_retries + 1),
                reraise=True,
            ):
                with attempt:
                    return await call()
        except (openai.APIStatusError, openai.APIConnectionError, _MalformedResponse) as error:
            raise BackendError(self._describe(error, failed)) from error
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _describe(self, error: Exception, failed: Sequence[str]) -> str:
        """The final error of a request; ``failed`` says what the retried attempts met."""
        attempts = len(failed) + 1
        earlier = f" (earlier attempts: {'; '.join(failed)})" if failed else ""
        where = f"{self.identity}"
        if isinstance(error, openai.APIStatusError):
            status = error.status_code
            if _retryable(error):
                return (
                    f"{where}: HTTP {status} after {attempts} attempts: "
                    f"{_server_message(error)}{earlier}"
                )
            hint = ""
            if status in (401, 403):
                hint = ". Fix: check the API key (OPENAI_API_KEY or api_key=)"
            elif status == 404 and self.mode == "completion":
                hint = (
                    ". Fix: a chat-only model (such as gpt-4o-mini) needs mode='chat'; "
                    "otherwise check the model name and base_url"
                )
            elif status == 404:
                hint = ". Fix: check the model name and base_url"
            return (
                f"{where}: the server rejected the request (HTTP {status}): "
                f"{_server_message(error)}"
                f"{earlier}{hint}"
            )
        if isinstance(error, openai.APITimeoutError):
            return (
                f"{where}: attempt {attempts} of {attempts} timed out after {self.timeout} s"
                f"{earlier}. Fix: raise timeout, or lower concurrency"
            )
        if isinstance(error, openai.APIConnectionError):
            return (
                f"{where}: cannot reach the server at {self._base_url()} after {attempts} "
                f"attempts ({error}){earlier}. Fix: check base_url and that the server is running"
            )
        return f"{where}: malformed response after {attempts} attempts: {error}{earlier}"


def _run_sync(make: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine to completion, also from code already inside an event loop."""

    async def main() -> _T:
        return await make()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with ThreadPoolExecutor(max_workers=1) as worker:  # e.g. inside Jupyter's loop
        return worker.submit(asyncio.run, main()).result()
