"""The :class:`Judge`: the same prompt, image sizing and answer parser as training, over any backend."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass
from itertools import islice
from typing import Any

from editjudge import prompts
from editjudge.formats import POINTWISE, JudgmentFormat, PairwiseFormat, get_format
from editjudge.judge.backends import Backend, ItemOutput, SamplingOptions, load_backend
from editjudge.judge.comparison import Comparison, both_orders, combine_comparison
from editjudge.judge.ranking import Ranking, build_ranking
from editjudge.data import images as imgs
from editjudge.judge.request import ImageInput, ImageSizing, JudgeRequest, Sources, as_sources, build_request, images_request
from editjudge.judge.result import JudgeResult, combine, failed
from editjudge.judge.tournament import Tournament, run_tournament


@dataclass(frozen=True)
class EditItem:
    """One edit to judge (``source``: one image, or the edit's source images in order)."""

    source: Sources
    edited: ImageInput
    instruction: str


@dataclass(frozen=True)
class PairItem:
    """Two candidate edits of one source (or of several source images, in order) to compare."""

    source: Sources
    a: ImageInput
    b: ImageInput
    instruction: str


def _as_pair(item: PairItem | Mapping[str, Any] | Sequence[Any]) -> PairItem:
    """A :class:`PairItem` from an item, a mapping (``source``, ``a``, ``b``, ``instruction``) or a 4-tuple."""
    if isinstance(item, PairItem):
        return item
    if isinstance(item, Mapping):
        missing = [key for key in ("source", "a", "b", "instruction") if key not in item]
        if missing:
            raise ValueError(f"the pair lacks {', '.join(missing)}")
        return PairItem(item["source"], item["a"], item["b"], item["instruction"])
    if isinstance(item, Sequence) and not isinstance(item, (str, bytes)) and len(item) == 4:
        return PairItem(*item)
    raise ValueError(f"expected (source, a, b, instruction) or a mapping with those keys, got {type(item).__name__}")


def _as_item(item: EditItem | Mapping[str, Any] | Sequence[Any]) -> EditItem:
    """An :class:`EditItem` from an item, a mapping or a ``(source, edited, instruction)`` triple."""
    if isinstance(item, EditItem):
        return item
    if isinstance(item, Mapping):
        missing = [key for key in ("source", "edited", "instruction") if key not in item]
        if missing:
            raise ValueError(f"the item lacks {', '.join(missing)}")
        return EditItem(item["source"], item["edited"], item["instruction"])
    if isinstance(item, Sequence) and not isinstance(item, (str, bytes)) and len(item) == 3:
        return EditItem(*item)
    raise ValueError(f"expected (source, edited, instruction) or a mapping with those keys, got {type(item).__name__}")


def describe_image(image: Sources) -> str:
    """A short name for an image input (its path, or its kind; several sources joined by ``+``)."""
    if isinstance(image, (list, tuple)):
        return " + ".join(describe_image(one) for one in image)
    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image)
    if isinstance(image, (bytes, bytearray)):
        return f"<{len(image)} bytes>"
    return f"<{type(image).__name__}>"


def input_failure(exc: Exception) -> JudgeResult:
    """The result of an edit whose request could not be built (unreadable image, empty instruction…)."""
    reason = getattr(exc, "reason", None)  # ImageRejected carries a stable code
    message = imgs.stable_message(exc) or type(exc).__name__
    return failed("input_error", f"{reason}: {message}" if reason else message)


def _unreadable(image: ImageInput, role: str, bomb_pixels: int) -> str | None:
    """Why an image cannot be judged (its header read only), as an ``input_error``, or None."""
    from editjudge.judge.request import image_bytes

    try:
        imgs.probe(image_bytes(image, role), bomb_pixels)
    except Exception as exc:  # noqa: BLE001 - the reason is reported, the tournament goes on
        return input_failure(exc).error
    return None


def comparison_of(output: ItemOutput) -> Comparison:
    """A backend's output for one pair → its :class:`~editjudge.judge.comparison.Comparison`."""
    return Comparison(error=output.error) if output.error else combine_comparison(output.generations)


def result_of(output: ItemOutput, fmt: JudgmentFormat = POINTWISE) -> JudgeResult:
    """A backend's output for one edit → its :class:`JudgeResult` (the error, or the generations combined by the
    judge's format)."""
    return JudgeResult(error=output.error) if output.error else combine(output.generations, fmt)


def check_rank_by(fmt: JudgmentFormat, rank_by: str | None) -> None:
    """``ValueError`` unless ``rank_by`` is None, ``"overall"`` or one of a dimension judge's dimensions."""
    if rank_by in (None, "overall"):
        return
    names = getattr(fmt, "names", ())
    if rank_by not in names or len(names) < 2:
        choices = ["overall", *names] if len(names) > 1 else ["overall"]
        raise ValueError(f"cannot rank by {rank_by!r}: this judge ({fmt.spec}) gives {choices}")


class Judge:
    """Score image edits with a trained judge.

    ``Judge(model, adapter=None, backend="transformers")`` loads a base model plus an optional LoRA adapter (or a
    merged model); ``backend="openai"`` talks to an OpenAI-compatible server (``base_url=…``) and ``"vllm"`` runs
    vLLM in process. ``sizing`` holds the image settings ``prepare`` used (default: prepare's defaults), so images
    are sized exactly as in training. ``num_samples=k > 1`` turns on Avg@k (sampled at ``temperature``, default
    1.0). ``format`` is the judgment format the judge was trained in (a spec such as ``"pointwise"``, the default,
    or a format object; :mod:`editjudge.formats`). Extra keyword arguments go to the backend (e.g. ``batch_size``,
    ``device``, ``base_url``, ``timeout``, ``concurrency``).
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        adapter: str | os.PathLike[str] | None = None,
        backend: str | Backend = "transformers",
        *,
        template: prompts.PromptTemplate | str = prompts.DEFAULT_TEMPLATE,
        format: JudgmentFormat | str | None = None,  # noqa: A002 - the judgment format, named as users say it
        sizing: ImageSizing | None = None,
        num_samples: int = 1,
        temperature: float | None = None,
        max_new_tokens: int = 512,
        seed: int = 0,
        progress: bool = False,
        **backend_options: Any,
    ) -> None:
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if temperature is None:
            temperature = 1.0 if num_samples > 1 else 0.0
        if num_samples > 1 and temperature <= 0:
            raise ValueError("Avg@k with num_samples > 1 needs sampling: set temperature > 0")
        self.format = get_format(format)
        self.template = self.format.load_template(template)
        self.sizing = sizing or ImageSizing()
        self.sampling = SamplingOptions(
            num_samples=num_samples, temperature=float(temperature), max_new_tokens=max_new_tokens, seed=seed
        )
        self.progress = progress
        if isinstance(backend, str):
            adapter_str = os.fspath(adapter) if adapter is not None else None
            if backend == "vllm":  # vLLM reserves room for a fixed number of images per prompt: the format's
                backend_options.setdefault("images_per_prompt", len(self.format.image_roles()))
            self.backend: Backend = load_backend(backend, os.fspath(model), adapter_str, **backend_options)
        else:
            self.backend = backend

    @classmethod
    def from_backend(cls, backend: Backend, **options: Any) -> Judge:
        """A judge over a backend object already built (e.g. ``TransformersBackend.from_loaded(model, processor)``)."""
        return cls("<in-memory>", backend=backend, **options)

    def request(self, source: Sources, edited: ImageInput, instruction: str) -> JudgeRequest:
        """The prompt + sized images for one edit (what every backend receives)."""
        return build_request(source, edited, instruction, self.template, self.sizing, self.format)

    def score(self, source: Sources, edited: ImageInput, instruction: str) -> JudgeResult:
        """Judge one edit."""
        return self.score_many([EditItem(source, edited, instruction)], progress=False)[0]

    def score_many(
        self, items: Iterable[EditItem | Mapping[str, Any] | Sequence[Any]], *, progress: bool | None = None
    ) -> list[JudgeResult]:
        """Judge many edits in backend-sized batches; a bad item gets an error result, the rest go on."""
        return list(self.iter_scores(items, progress=progress))

    def iter_scores(
        self, items: Iterable[EditItem | Mapping[str, Any] | Sequence[Any]], *, progress: bool | None = None
    ) -> Iterator[JudgeResult]:
        """Like :meth:`score_many`, yielding results in input order as each batch finishes."""
        from tqdm.auto import tqdm

        if isinstance(self.format, PairwiseFormat):
            raise ValueError("a pairwise judge compares two candidate edits: use Judge.compare / compare_many, or "
                             "best_of_n (a knockout or round-robin tournament)")
        total = len(items) if isinstance(items, Sized) else None
        show = self.progress if progress is None else progress
        iterator = iter(items)
        with tqdm(total=total, disable=not show, desc="judging", unit="edit") as bar:
            while chunk := list(islice(iterator, max(1, self.backend.batch_size))):
                results = self._score_chunk(chunk)
                bar.update(len(chunk))
                yield from results

    def _score_chunk(self, items: list[Any]) -> list[JudgeResult]:
        results: list[JudgeResult | None] = [None] * len(items)
        requests: list[JudgeRequest] = []
        positions: list[int] = []
        for i, item in enumerate(items):
            try:
                edit = _as_item(item)
                requests.append(self.request(edit.source, edit.edited, edit.instruction))
                positions.append(i)
            except Exception as exc:  # noqa: BLE001 - one unreadable image must not stop the batch
                results[i] = input_failure(exc)
        outputs: list[ItemOutput] = self.backend.generate(requests, self.sampling) if requests else []
        for i, output in zip(positions, outputs):
            results[i] = result_of(output, self.format)
        return [r for r in results if r is not None]

    def best_of_n(self, source: Sources, candidates: Sequence[ImageInput], instruction: str,
                  rank_by: str | None = None) -> Ranking:
        """Rank candidate edits of ``source``: by score, ties broken by the expected score, then input order.

        A dimension judge ranks by the overall (its set's rule), or by one dimension with ``rank_by="NAME"``."""
        if not candidates:
            raise ValueError("best_of_n needs at least one candidate")
        check_rank_by(self.format, rank_by)
        results = self.score_many([EditItem(source, c, instruction) for c in candidates])
        return build_ranking(describe_image(source), instruction, [describe_image(c) for c in candidates], results,
                             rank_by=rank_by)

    # ------------------------------------------------------------------------------------- pairwise judges
    def compare(self, source: Sources, a: ImageInput, b: ImageInput, instruction: str, *,
                both_orders: bool = False) -> Comparison:
        """Which of candidates ``a`` and ``b`` of ``source`` is better, or a tie: the preference plus p(A), p(B),
        p(tie) at the answer token. ``both_orders`` judges (b, a) too and combines the two
        (:func:`editjudge.judge.comparison.both_orders`; ``consistent`` says whether they agreed)."""
        return self.compare_many([PairItem(source, a, b, instruction)], both_orders=both_orders, progress=False)[0]

    def compare_many(self, items: Iterable[PairItem | Mapping[str, Any] | Sequence[Any]], *,
                     both_orders: bool = False, progress: bool | None = None) -> list[Comparison]:
        """Compare many pairs in backend-sized batches; a bad pair gets an error comparison, the rest go on."""
        return list(self.iter_comparisons(items, both_orders=both_orders, progress=progress))

    def iter_comparisons(self, items: Iterable[PairItem | Mapping[str, Any] | Sequence[Any]], *,
                         both_orders: bool = False, progress: bool | None = None) -> Iterator[Comparison]:
        """Like :meth:`compare_many`, yielding comparisons in input order as each batch finishes."""
        from tqdm.auto import tqdm

        if not isinstance(self.format, PairwiseFormat):
            raise ValueError(f"compare needs a pairwise judge (trained with --format pairwise); this one is "
                             f"{self.format.spec}: rank candidates with best_of_n, or score both and compare")
        total = len(items) if isinstance(items, Sized) else None
        show = self.progress if progress is None else progress
        per_batch = max(1, self.backend.batch_size // (2 if both_orders else 1))
        iterator = iter(items)
        with tqdm(total=total, disable=not show, desc="comparing", unit="pair") as bar:
            while chunk := list(islice(iterator, per_batch)):
                yield from self._compare_chunk(chunk, both_orders)
                bar.update(len(chunk))

    def tournament(self, source: Sources, candidates: Sequence[ImageInput], instruction: str, *,
                   mode: str = "knockout", aggregate: str = "bt", both_orders: bool = False,
                   seed: int = 0) -> Tournament:
        """Rank candidate edits of ``source`` by comparisons (:mod:`editjudge.judge.tournament`): a knockout
        (N − 1 comparisons) or a round-robin (N (N − 1) / 2) aggregated by Bradley–Terry or wins. A candidate that
        cannot be read is ranked last with its reason and never compared."""
        if not candidates:
            raise ValueError("a tournament needs at least one candidate")
        errors = [_unreadable(c, f"candidate {k + 1}", self.sizing.max_image_pixels) for k, c in enumerate(candidates)]

        def compare(shown: Sequence[tuple[int, int]]) -> list[Comparison]:
            items = [PairItem(source, candidates[a], candidates[b], instruction) for a, b in shown]
            return self.compare_many(items, both_orders=both_orders, progress=False)

        return run_tournament(compare, describe_image(source), instruction, [describe_image(c) for c in candidates],
                              errors, mode=mode, aggregate=aggregate, both_orders=both_orders, seed=seed)

    def pair_request(self, source: Sources, a: ImageInput, b: ImageInput, instruction: str) -> JudgeRequest:
        """The prompt + sized images for one pair (sources, then A, then B)."""
        sources = as_sources(source)
        return images_request((*sources, a, b), len(sources), instruction, self.template, self.sizing, self.format)

    def _compare_chunk(self, items: list[Any], both: bool) -> list[Comparison]:
        results: list[Comparison | None] = [None] * len(items)
        requests: list[JudgeRequest] = []
        positions: list[int] = []
        for i, item in enumerate(items):
            try:
                pair = _as_pair(item)
                orders = [(pair.a, pair.b), (pair.b, pair.a)] if both else [(pair.a, pair.b)]
                built = [self.pair_request(pair.source, x, y, pair.instruction) for x, y in orders]
            except Exception as exc:  # noqa: BLE001 - one unreadable image must not stop the batch
                results[i] = Comparison(error=input_failure(exc).error)
                continue
            requests += built
            positions.append(i)
        outputs: list[ItemOutput] = self.backend.generate(requests, self.sampling) if requests else []
        step = 2 if both else 1
        for k, i in enumerate(positions):
            judged = [comparison_of(output) for output in outputs[k * step : (k + 1) * step]]
            results[i] = both_orders(*judged) if both else judged[0]
        return [r for r in results if r is not None]

