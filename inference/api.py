"""The generation API (`/api/v1/generations`) and its OpenAI-compatible twin (`/v1/completions`,
`/v1/models`). Thin: validate, call a service, render."""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import replace

from django.conf import settings
from django.db import connections
from django.http import StreamingHttpResponse
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import authentication, exceptions, permissions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import DomainError, domain_error_body, error_body
from core.outages import is_outage, outage_error
from licensing.errors import ApiKeyInvalid
from licensing.selectors import grants_active_for_key
from licensing.services import apikey_authenticate
from training.api import IsTrainer
from training.model_names import model_name

from .engine import InvalidGenerationRequest, SamplingParams, TokenEvent
from .errors import GenerationFailed
from .model_ids import licensed_versions, model_id_resolve
from .models import UsageEntry
from .precision import version_precision_for
from .precision_choice import version_precision_set
from .services import (
    GenerationInput,
    error_with_charge,
    generation_begin,
    generation_create,
    generation_execute,
    generation_keepalive,
    generation_settle_delivered,
    keepalive_seconds,
    model_fields,
    result_from_sent,
    truncate_to_sent,
)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer imp_…`. A bad or revoked key is a 401 (ApiKeyInvalid)."""

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        try:
            key = apikey_authenticate(token.strip())
        except ApiKeyInvalid as exc:
            # DRF's own authentication failure, so the request is marked unauthenticated and the
            # 401 carries WWW-Authenticate; the handler renders it in the one error shape.
            raise exceptions.AuthenticationFailed(exc.message, code=exc.code) from exc
        return key.owner, key

    def authenticate_header(self, request):
        return 'Bearer realm="imprint"'


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An Imprint API key (imp_…)."}


_ERROR = inline_serializer("ApiError", fields={"error": inline_serializer("ApiErrorBody", fields={
    "type": serializers.CharField(), "code": serializers.CharField(), "message": serializers.CharField(),
    "param": serializers.CharField(allow_null=True)})})
GENERATION_ERRORS = {
    400: OpenApiResponse(_ERROR, "Invalid parameters, empty prompt, or prompt + max_new_tokens past the "
                                 "model's context (context_length_exceeded, with both numbers)."),
    401: OpenApiResponse(_ERROR, "Missing, unknown or revoked API key (invalid_api_key), or its account was deactivated "
                                 "(account_inactive)."),
    402: OpenApiResponse(_ERROR, "Quota exhausted (insufficient_quota, with remaining_tokens)."),
    403: OpenApiResponse(_ERROR, "Licence inactive, expired or suspended, or purpose not permitted."),
    404: OpenApiResponse(_ERROR, "No licence of this key covers the model (model_not_found)."),
    409: OpenApiResponse(_ERROR, "The Idempotency-Key's first request is still running (idempotency_in_progress: "
                                 "retry after it finishes to get its result) or had other parameters "
                                 "(idempotency_key_reused)."),
    429: OpenApiResponse(_ERROR, "Rate limit reached (x-ratelimit-* and retry-after headers)."),
}


class _KeyApi(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [permissions.IsAuthenticated]


_DEFAULT = SamplingParams()


class SamplingFields(serializers.Serializer):
    """The sampling parameters both APIs take, with `SamplingParams`' defaults and limits, validated
    into `validated_data["sampling"]` (a value it refuses is a 400 naming the parameter). The API's
    `ignore_eos` (vLLM's name) is the engine's `stop_at_eos` negated; a subclass may name the token
    limit otherwise (`max_tokens_field`)."""

    max_tokens_field = "max_new_tokens"

    max_new_tokens = serializers.IntegerField(min_value=1, max_value=SamplingParams.MAX_NEW_TOKENS,
                                              default=_DEFAULT.max_new_tokens)
    temperature = serializers.FloatField(min_value=0.0, max_value=SamplingParams.MAX_TEMPERATURE,
                                         default=_DEFAULT.temperature)
    top_k = serializers.IntegerField(min_value=0, default=_DEFAULT.top_k)
    top_p = serializers.FloatField(min_value=0.0, max_value=1.0, default=_DEFAULT.top_p)
    n = serializers.IntegerField(min_value=1, max_value=SamplingParams.MAX_SAMPLES, default=_DEFAULT.n)
    seed = serializers.IntegerField(min_value=0, max_value=SamplingParams.MAX_SEED, required=False, allow_null=True)
    ignore_eos = serializers.BooleanField(default=not _DEFAULT.stop_at_eos)

    def validate(self, attrs):
        attrs = super().validate(attrs)
        try:
            attrs["sampling"] = SamplingParams(
                max_new_tokens=attrs.pop(self.max_tokens_field), temperature=attrs.pop("temperature"),
                top_k=attrs.pop("top_k"), top_p=attrs.pop("top_p"), n=attrs.pop("n"), seed=attrs.pop("seed", None),
                stop_at_eos=not attrs.pop("ignore_eos"))
        except InvalidGenerationRequest as exc:
            field_name = self.max_tokens_field if exc.param == "max_new_tokens" else exc.param
            raise serializers.ValidationError({field_name: str(exc)}) from exc
        return attrs


class GenerationFields(SamplingFields):
    prompt = serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=100_000)
    purpose = serializers.CharField(required=False, allow_blank=True, max_length=32)
    stream = serializers.BooleanField(default=False)


def _input(data: dict, model: str) -> GenerationInput:
    return GenerationInput(model=model, prompt=data["prompt"], sampling=data["sampling"],
                           purpose=data.get("purpose") or None)


def _sse(data) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


# How often a stream being read pushes back its reservation's expiry (None: services' keepalive_seconds).
KEEPALIVE_SECONDS: float | None = None
SSE_KEEPALIVE = b": keep-alive\n\n"  # an SSE comment: clients ignore it, proxies see the stream alive


class _Stream:
    """Runs a prepared request on the engine and yields its tokens as server-sent events.

    The tokens a client received are always charged (`generation_settle_delivered`): a client that
    goes away closes the generator, the cancel flag stops the engine between steps, and the request
    is settled for the tokens sent (a ledger row with interrupted=true); an engine that fails midway
    is charged for what it had sent, and its error event names that charge (tokens and ledger row);
    a slow reader keeps its reservation alive; a quiet stream (the model loading, a long queue)
    sends an SSE comment every INFERENCE_SSE_KEEPALIVE_SECONDS."""

    def __init__(self, prepared, render_token, render_final):
        self.prepared, self.render_token, self.render_final = prepared, render_token, render_final
        self.head = {"id": prepared.request_id, "created": prepared.created, "model": str(prepared.version.pk),
                     **model_fields(prepared.version)}
        self.events: queue.Queue = queue.Queue()
        self.cancel = threading.Event()
        self.sent_ids: dict[int, list[int]] = {}
        self.sent_text: dict[int, str] = {}
        self.kept_alive = time.monotonic()

    def _run(self):
        try:
            result = generation_execute(self.prepared, on_token=self.events.put, should_cancel=self.cancel.is_set)
            self.events.put(("done", result))
        except BaseException as exc:  # noqa: BLE001 - delivered to the client as an error event
            self.events.put(("error", exc))
        finally:
            connections.close_all()  # this thread's own connections (a failure releases quota)

    def __iter__(self):
        threading.Thread(target=self._run, daemon=True).start()
        finished = False
        quiet = float(settings.INFERENCE_SSE_KEEPALIVE_SECONDS)
        try:
            while True:
                try:
                    item = self.events.get(timeout=quiet)
                except queue.Empty:
                    yield SSE_KEEPALIVE
                    continue
                if isinstance(item, TokenEvent):
                    yield self._token(item)
                    continue
                finished = True
                yield from self._finish(*item)
                return
        finally:
            if not finished:
                self._interrupted()

    def _finish(self, kind, value):
        entry = self._charge(value if kind == "done" else None, interrupted=False)
        if kind == "error":
            yield _sse(_error_payload(value, entry))
        elif entry is None:
            yield _sse(_error_payload(GenerationFailed("Generation failed: its charge could not be recorded."), None))
        else:
            yield _sse(self.render_final(entry.response))
        yield _sse("[DONE]")

    def _token(self, event: TokenEvent) -> bytes:
        if event.token_id >= 0:
            self.sent_ids.setdefault(event.sample_index, []).append(event.token_id)
        self.sent_text[event.sample_index] = self.sent_text.get(event.sample_index, "") + event.text
        every = keepalive_seconds() if KEEPALIVE_SECONDS is None else KEEPALIVE_SECONDS
        if time.monotonic() - self.kept_alive > every:
            self.kept_alive = time.monotonic()
            generation_keepalive(self.prepared)
        return _sse(self.render_token(self.head, event.sample_index, event.text))

    def _charge(self, result, *, interrupted: bool):
        """Settle for exactly what the client received; None when nothing was (or could be) recorded."""
        if result is None:  # the engine failed: its reservation and key are released already
            if not any(self.sent_ids.values()):
                return None  # nothing delivered, nothing charged
            result, interrupted = result_from_sent(self.prepared, sent_ids=self.sent_ids, sent_text=self.sent_text), True
            prepared = replace(self.prepared, idempotency_key="")  # the freed key may already run a retry
        else:
            prepared = self.prepared
            if interrupted:
                result = truncate_to_sent(result, sent_tokens={i: len(ids) for i, ids in self.sent_ids.items()},
                                          sent_text=self.sent_text)
        try:
            return generation_settle_delivered(prepared, result, interrupted=interrupted)
        except Exception:  # noqa: BLE001 - logged by the service; the stream ends with an error event
            return None

    def _interrupted(self):
        self.cancel.set()
        while True:  # wait for the engine to stop, then charge for what was sent
            item = self.events.get()
            if isinstance(item, tuple):
                break
        kind, value = item
        self._charge(value if kind == "done" else None, interrupted=True)


def _error_payload(exc, entry) -> dict:
    """The error event of a stream, saying what was charged (`entry`: the ledger row, or None)."""
    if not isinstance(exc, DomainError):
        exc = outage_error(exc) if is_outage(exc) else GenerationFailed("Generation failed.")
    return domain_error_body(error_with_charge(exc, entry))


def _event_stream(events, headers: dict) -> StreamingHttpResponse:
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx must not buffer an event stream
    for name, value in headers.items():
        response[name] = value
    return response


def _replayed_events(body: dict, render_token, render_final):
    """A finished generation as the stream it would have been: each output's text as one token
    event, then the final event (so an SSE client, the openai one included, parses it as usual)."""
    head = {"id": body["id"], "created": body["created"], "model": body["model"],
            "model_name": body.get("model_name")}
    for output in body["outputs"]:
        yield _sse(render_token(head, output["index"], output["text"]))
    yield _sse(render_final(body))
    yield _sse("[DONE]")


def _generate(request, params: GenerationInput, stream: bool, render_token, render_final, *, stream_final=None):
    """Shared by both APIs: the Idempotency-Key claim (or its replay), then streaming or the plain
    flow. A replay comes as a stream when this request asks for one."""
    idempotency_key = request.headers.get("Idempotency-Key", "")[:200]
    key = request.auth
    if not stream:
        entry, headers, replayed = generation_create(api_key=key, params=params, idempotency_key=idempotency_key)
        if replayed:
            headers = {**headers, "Idempotent-Replayed": "true"}
        return Response(render_final(entry.response), headers=headers)
    begun = generation_begin(api_key=key, params=params, idempotency_key=idempotency_key)
    if isinstance(begun, UsageEntry):
        replay = _replayed_events(begun.response, render_token, stream_final or render_final)
        return _event_stream(replay, {"Idempotent-Replayed": "true"})
    return _event_stream(iter(_Stream(begun, render_token, stream_final or render_final)), begun.headers())


class GenerationInputSerializer(GenerationFields):
    model = serializers.CharField(required=False, max_length=100, help_text="Model version id or digest.")
    listing = serializers.CharField(required=False, max_length=100, help_text="Or a listing id.")

    def validate(self, attrs):
        if not attrs.get("model") and not attrs.get("listing"):
            raise serializers.ValidationError({"model": "Give a model (version id or digest) or a listing."})
        return super().validate(attrs)


class GenerationCreateApi(_KeyApi):
    """Generate text under a licence; every output carries a signed receipt and the licence stamp.
    `precision` (beside `model_digest`, and as the receipt's `precision` claim) is the numeric
    precision the engine served at: fp32, or int8 / bf16 once the model's quality check accepted
    it (see GET /api/v1/training/versions/{id}/serving-precision/). `stream: true` answers with
    server-sent events: token events, then the full result. With an
    `Idempotency-Key` header the key's first request is the only one that generates: a duplicate
    while it runs is 409 idempotency_in_progress, one after it replays it (Idempotent-Replayed)."""

    InputSerializer = GenerationInputSerializer

    @extend_schema(request=GenerationInputSerializer, responses={200: dict, **GENERATION_ERRORS})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        params = _input(v, model_id_resolve(api_key=request.auth, model=v.get("model") or v["listing"]))
        return _generate(request, params, v["stream"], _token_event, lambda body: body,
                         stream_final=lambda body: {"type": "result", **body})


def _token_event(head: dict, index: int, text: str) -> dict:
    return {"type": "token", "id": head["id"], "index": index, "text": text}


# --- OpenAI-compatible ------------------------------------------------------------------------

class CompletionCreateApi(_KeyApi):
    """OpenAI-compatible text completions: the official `openai` client works with base_url set to
    this site. Imprint's extras (`top_k`, `purpose`) come through `extra_body`; the receipts, the
    licence stamp, the model digest and the serving `precision` travel in the response's `imprint`
    field."""

    class InputSerializer(GenerationFields):
        class Meta:
            ref_name = "CompletionInput"

        max_tokens_field = "max_tokens"

        model = serializers.CharField(max_length=100)
        prompt = serializers.JSONField()
        max_new_tokens = None  # OpenAI's name is max_tokens, and its default 16
        max_tokens = serializers.IntegerField(min_value=1, max_value=SamplingParams.MAX_NEW_TOKENS, default=16)

        def validate_prompt(self, value):
            if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
                value = value[0]
            if not isinstance(value, str):
                raise serializers.ValidationError("prompt must be one string.")
            return value

    @extend_schema(request=InputSerializer, responses={200: dict, **GENERATION_ERRORS})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        params = _input(v, model_id_resolve(api_key=request.auth, model=v["model"]))
        asked = v["model"].strip()
        return _generate(request, params, v["stream"],
                         lambda head, index, text: _completion_chunk(head, index, text, asked=asked),
                         lambda body: completion_body(body, asked=asked),
                         stream_final=lambda body: completion_stream_final(body, asked=asked))


def openai_model(asked: str, body: dict) -> str:
    """The `model` of an OpenAI-shaped response: the readable id exactly as the client asked for
    it (`trainer/slug` or `trainer/slug@digest12`), else the version's readable id (its UUID while
    unlisted, or in a body stored before responses carried names)."""
    if "/" in asked:
        return asked
    return body.get("model_name") or body["model"]


def _finish_reason(reason: str) -> str:
    return "stop" if reason == "stop" else "length"


def completion_body(body: dict, *, asked: str = "") -> dict:
    """An Imprint generation rendered as an OpenAI `text_completion` (`model`: openai_model)."""
    return {
        "id": body["id"], "object": "text_completion", "created": body["created"],
        "model": openai_model(asked, body),
        "choices": [{"index": o["index"], "text": o["text"], "logprobs": None,
                     "finish_reason": _finish_reason(o["finish_reason"])} for o in body["outputs"]],
        "usage": body["usage"],
        "imprint": {"receipts": [o["receipt"] for o in body["outputs"]], "licence": body["licence"],
                    "model_digest": body["model_digest"],
                    # Replayed bodies stored before precisions were recorded were all served at fp32.
                    "precision": body.get("precision", "fp32"), "seed": body["seed"], "purpose": body["purpose"]},
    }


def completion_stream_final(body: dict, *, asked: str = "") -> dict:
    """The last chunk of a completion stream: finish reasons, usage, receipts (no text: the client
    has it from the token chunks)."""
    final = completion_body(body, asked=asked)
    final["choices"] = [{**c, "text": ""} for c in final["choices"]]
    return final


def _completion_chunk(head: dict, index: int, text: str, *, asked: str = "") -> dict:
    return {"id": head["id"], "object": "text_completion", "created": head["created"],
            "model": openai_model(asked, head),
            "choices": [{"index": index, "text": text, "logprobs": None, "finish_reason": None}]}


class ModelListApi(_KeyApi):
    """The models the key is licensed to use (OpenAI `GET /v1/models`), by readable id:
    `<trainer>/<listing-slug>` for the newest licensed version of each model, and
    `<trainer>/<listing-slug>@<digest12>` for every licensed version. A version without a
    listing is listed by its UUID. `owned_by` is the trainer."""

    @extend_schema(responses={200: dict, 401: GENERATION_ERRORS[401]})
    def get(self, request):
        data, named_ids = [], set()
        for named in licensed_versions(api_key=request.auth, active_only=True):
            if named.base_id not in named_ids:
                named_ids.add(named.base_id)
                data.append(_model_entry(named.base_id, named.version, named.owned_by))
            data.append(_model_entry(named.pinned_id, named.version, named.owned_by))
        named_versions = {entry["version"] for entry in data}
        seen = set()
        for grant in grants_active_for_key(api_key=request.auth).select_related("model_version__owner"):
            version = grant.model_version
            if str(version.pk) not in named_versions and version.pk not in seen:
                seen.add(version.pk)
                data.append(_model_entry(str(version.pk), version, version.owner.username))
        return Response({"object": "list", "data": data})


def _model_entry(model_id: str, version, owned_by: str) -> dict:
    return {"id": model_id, "object": "model", "created": int(version.created_at.timestamp()), "owned_by": owned_by,
            "name": model_name(version).title, "version": str(version.pk), "digest": version.digest,
            "n_positions": version.n_positions}


class ChatCompletionApi(APIView):
    """`POST /v1/chat/completions`: Imprint's models are completion models (fine-tuned GPT-2 with
    no chat template), so a chat request is answered with an OpenAI-shaped 400 that points at
    `/v1/completions`, rather than with text from a prompt format the model never saw. Open to
    any caller: the answer is the same with or without a key."""

    authentication_classes: list = []
    permission_classes = [permissions.AllowAny]

    @extend_schema(request=None, responses={400: OpenApiResponse(_ERROR, "Always: use /v1/completions.")})
    def post(self, request):
        message = ("Imprint's models are completion models, not chat models: they continue a prompt and have "
                   "no chat template. Call POST /v1/completions (client.completions.create) with a `prompt` "
                   "instead; GET /v1/models lists the models your key may use.")
        return Response(error_body(status_code=400, message=message, code="chat_not_supported", param="messages"),
                        status=400)


# --- Serving precision of a trainer's version (management API) ---------------------------------

class PrecisionCheckOutput(serializers.Serializer):
    precision = serializers.CharField()
    state = serializers.ChoiceField(choices=["running", "done", "failed"])
    device = serializers.CharField()
    windows = serializers.IntegerField(help_text="Validation windows measured.")
    window_tokens = serializers.IntegerField(help_text="Tokens per window.")
    perplexity_fp32 = serializers.FloatField(allow_null=True)
    perplexity = serializers.FloatField(allow_null=True)
    increase = serializers.FloatField(allow_null=True, help_text="Relative: 0.008 = +0.8 %.")
    bound = serializers.FloatField(allow_null=True, help_text="The bound when measured.")
    accepted = serializers.BooleanField(help_text="The verdict when measured.")
    seconds = serializers.FloatField(allow_null=True)
    error = serializers.CharField()
    measured_at = serializers.DateTimeField(allow_null=True)


class ServingPrecisionOutput(serializers.Serializer):
    model_version = serializers.UUIDField()
    serving_precision = serializers.CharField(help_text="Your choice; blank: the deployment's default.")
    deployment_default = serializers.CharField()
    requested = serializers.CharField(help_text="Your choice, else the deployment's default.")
    chosen_by = serializers.ChoiceField(choices=["trainer", "deployment"])
    effective = serializers.CharField(help_text="What requests are served at now.")
    verdict = serializers.ChoiceField(choices=["full", "accepted", "refused", "pending", "measuring", "failed"])
    bound = serializers.FloatField(help_text="The largest relative perplexity increase served.")
    bound_text = serializers.CharField(help_text='The bound in words ("2 %").')
    check = PrecisionCheckOutput(allow_null=True)
    text = serializers.CharField(help_text="The model card's sentence.")


class VersionServingPrecisionApi(APIView):
    """The numeric precision one of your model versions is served at (trainers; personal access
    tokens need the "training" scope). Below fp32 a precision is served only once its check, on
    the version's own validation windows, shows perplexity rising by at most the deployment's
    bound; until then, or when it rises more, requests are served at fp32."""

    permission_classes = [IsTrainer]
    token_scope = "training"

    class InputSerializer(serializers.Serializer):
        precision = serializers.CharField(allow_blank=True, allow_null=True, max_length=16,
                                          help_text="fp32, int8 or bf16; blank or null: the deployment's default.")

    @extend_schema(operation_id="training_versions_serving_precision_retrieve",
                   responses={200: ServingPrecisionOutput, 404: OpenApiResponse(_ERROR, "Not one of your versions.")})
    def get(self, request, pk):
        return Response(version_precision_for(trainer=request.user, version_id=pk))

    @extend_schema(operation_id="training_versions_serving_precision_update", request=InputSerializer,
                   responses={200: ServingPrecisionOutput,
                              400: OpenApiResponse(_ERROR, "Unknown precision (invalid_precision), or one whose check "
                                                           "was refused (precision_refused, with increase and bound)."),
                              404: OpenApiResponse(_ERROR, "Not one of your versions.")},
                   description="Choose the precision. One not measured yet is accepted as pending: its check runs "
                               "on the inference queue and the version is served at fp32 until it is accepted.")
    def put(self, request, pk):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(version_precision_set(trainer=request.user, version_id=pk,
                                              precision=data.validated_data["precision"]))
