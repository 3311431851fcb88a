"""What a resumed ``fit`` needs besides weights, buffers and optimizer state.

- DataLoaders created with ``seed=None`` shuffle with the model's ``shuffle_seed`` while ``fit``
  trains on them (``follow_seed``); that seed is saved with the model, so a resumed run in a new
  process draws the same batches whatever the global generator holds.
- Stateful callbacks (``state_dict()``/``load_state_dict()``, see ``fastnet._callback_state``):
  their states at the end of the last finished epoch are saved in the model file under the config
  key ``fit_state`` = ``{"epoch": E, "callbacks": [{"class": name, "index": i, "state": {...}}]}``
  (``index``: the i-th callback of that class in the ``callbacks`` list). A ``fit`` that starts at
  ``initial_epoch == E`` gives each saved state back to the callback of the same class and index,
  after ``on_train_begin`` (which resets them). Continuing in the same process works the same way:
  the states come from the previous ``fit``'s callbacks.
"""

from __future__ import annotations

CONFIG_KEY = "fit_state"
_SCALARS = (str, int, float, bool, type(None))


def follow_model_seed(model, *loaders) -> None:
    """Loaders without an explicit seed shuffle with the model's (saved) shuffle seed."""
    for loader in loaders:
        if hasattr(loader, "follow_seed"):
            loader.follow_seed(model.shuffle_seed)


def _stateful(callbacks):
    """(class name, index among that class, callback) of every callback with the state protocol."""
    seen: dict[str, int] = {}
    out = []
    for cb in callbacks or []:
        if not (callable(getattr(cb, "state_dict", None)) and callable(getattr(cb, "load_state_dict", None))):
            continue
        cls = type(cb).__name__
        index = seen.get(cls, 0)
        seen[cls] = index + 1
        out.append((cls, index, cb))
    return out


def capture(callbacks, epoch: int) -> dict:
    """The ``fit_state`` document of ``callbacks`` after ``epoch`` finished epochs."""
    return {
        "epoch": int(epoch),
        "callbacks": [{"class": c, "index": i, "state": cb.state_dict()} for c, i, cb in _stateful(callbacks)],
    }


def for_save(model) -> dict | None:
    """What ``save`` stores: the live (or last) fit's callback states, else those loaded with the model."""
    callbacks = getattr(model, "_fit_callbacks", None)
    if callbacks is not None:
        return capture(callbacks, model.epochs_trained)
    return getattr(model, "_loaded_fit_state", None)


def begin(model, callbacks, initial_epoch: int) -> dict | None:
    """Called by ``fit`` before ``on_train_begin``: the states to restore (None unless this fit
    continues at the epoch they were taken), and the new fit's callbacks become the model's."""
    previous = getattr(model, "_fit_callbacks", None)
    doc = capture(previous, model.epochs_trained) if previous is not None else getattr(model, "_loaded_fit_state", None)
    model._fit_callbacks = list(callbacks or [])
    model._loaded_fit_state = None
    if doc is None or initial_epoch == 0 or doc["epoch"] != initial_epoch:
        return None
    return doc


def restore(doc, callbacks) -> None:
    """Give each saved state to the callback of the same class and index (after ``on_train_begin``)."""
    if doc is None:
        return
    saved = {(e["class"], e["index"]): e["state"] for e in doc["callbacks"]}
    for cls, index, cb in _stateful(callbacks):
        state = saved.get((cls, index))  # states no callback takes are dropped: the user left them out
        if state is None:
            continue
        try:
            cb.load_state_dict(state)
        except ValueError as e:
            raise ValueError(
                f"fit: cannot restore the saved state of {cls} #{index} at epoch {doc['epoch']}: {e}"
            ) from None


def check(doc, path: str):
    """Validate a loaded ``fit_state`` (structure and JSON types); per-callback fields are checked by
    the callback's ``load_state_dict`` when a fit restores them."""
    if doc is None:
        return None

    def bad(field, expected, got):
        return ValueError(f"load: {path!r} field {CONFIG_KEY}{field}: expected {expected}, got {got!r:.80}")

    def index(value, field):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad(field, "an int >= 0", value)

    if not isinstance(doc, dict) or set(doc) != {"epoch", "callbacks"}:
        raise bad("", "a dict with 'epoch' and 'callbacks'", doc)
    index(doc["epoch"], ".epoch")
    if not isinstance(doc["callbacks"], list):
        raise bad(".callbacks", "a list", doc["callbacks"])
    for n, entry in enumerate(doc["callbacks"]):
        at = f".callbacks[{n}]"
        if not isinstance(entry, dict) or set(entry) != {"class", "index", "state"}:
            raise bad(at, "a dict with 'class', 'index' and 'state'", entry)
        if not isinstance(entry["class"], str):
            raise bad(f"{at}.class", "a class name", entry["class"])
        index(entry["index"], f"{at}.index")
        if not isinstance(entry["state"], dict):
            raise bad(f"{at}.state", "a dict", entry["state"])
        for key, value in entry["state"].items():
            items = value if isinstance(value, list) else [value]
            if not all(isinstance(v, _SCALARS) for v in items):
                raise bad(f"{at}.state.{key}", "a JSON scalar or a list of them", value)
    return doc
