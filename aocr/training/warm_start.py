"""`aocr train --init-from DIR`: start a new model from another model's weights.

Variables are matched by name. The layers whose size is the number of classes (the
character embedding, the output layer, the CTC read-out) are carried row by row for the
characters both charsets have; characters new to this model keep their fresh values.
The optimizer's state and the step count are not carried: fine-tuning starts at step 0.
"""

from __future__ import annotations

import logging

import numpy as np
import tensorflow as tf

from aocr.core import params as model_params
from aocr.core.charset import FIRST_CHAR_ID
from aocr.core.errors import AocrError
from aocr.core.options import FLAG_OF
from aocr.core.params import ModelParams
from aocr.core.session import choose_checkpoint

tf1 = tf.compat.v1
log = logging.getLogger("aocr")

# The fields that decide the variables' shapes (besides the charset).
WEIGHT_SHAPING = ("cnn", "decoder", "channels", "attn_num_hidden", "attn_num_layers", "use_gru",
                  "target_embedding_size")


def _check_compatible(source: ModelParams, target: ModelParams, source_dir: str) -> None:
    differing = [f"{FLAG_OF[name]}: {source_dir} has {getattr(source, name)!r}, this model {getattr(target, name)!r}"
                 for name in WEIGHT_SHAPING if getattr(source, name) != getattr(target, name)]
    if differing:
        raise AocrError("--init-from needs a model of the same shape; " + "; ".join(differing)
                        + ". Drop the flags that differ (they come from the other model's params.json then).")


def class_mapping(source: ModelParams, target: ModelParams) -> tuple[np.ndarray, np.ndarray]:
    """(target ids, source ids) of the classes both models have: PAD, GO, EOS and the shared characters."""
    source_ids = {char: FIRST_CHAR_ID + i for i, char in enumerate(source.charset)}
    pairs = [(i, i) for i in range(FIRST_CHAR_ID)]
    pairs += [(FIRST_CHAR_ID + i, source_ids[char]) for i, char in enumerate(target.charset) if char in source_ids]
    target_ids, from_ids = zip(*pairs, strict=True)
    return np.array(target_ids), np.array(from_ids)


def _carried(current: np.ndarray, stored: np.ndarray, classes: tuple[int, int],
             mapping: tuple[np.ndarray, np.ndarray]) -> np.ndarray | None:
    """The new value of a variable: the stored one when the shapes agree, the shared classes' slices
    when they differ only along the class axis; None when they cannot be matched."""
    if current.shape == stored.shape:
        return stored
    target_classes, source_classes = classes
    for axis in range(current.ndim):
        other = [d for i, d in enumerate(current.shape) if i != axis]
        if (current.shape[axis], stored.shape[axis]) == (target_classes, source_classes) and \
                other == [d for i, d in enumerate(stored.shape) if i != axis]:
            value = current.copy()
            target_ids, source_ids = mapping
            index = [slice(None)] * current.ndim
            index[axis] = target_ids
            source_index = list(index)
            source_index[axis] = source_ids
            value[tuple(index)] = stored[tuple(source_index)]
            return value
    return None


def warm_start(session: tf1.Session, target: ModelParams, source_dir: str) -> None:
    """Load the weights of the model in `source_dir` (its best checkpoint, else its latest) into the
    model variables of `session`'s graph."""
    source = model_params.require(source_dir)
    _check_compatible(source, target, source_dir)
    checkpoint = choose_checkpoint(source_dir, "best")
    reader = tf.train.load_checkpoint(checkpoint)
    stored_names = reader.get_variable_to_shape_map()
    mapping = class_mapping(source, target)
    classes = (target.char_table.num_classes, source.char_table.num_classes)
    carried = 0
    for variable in tf1.global_variables(scope=None):
        name = variable.op.name
        if name not in stored_names or name == "global_step" or "Adam" in name or name.startswith("beta"):
            continue
        value = _carried(session.run(variable), reader.get_tensor(name), classes, mapping)
        if value is None:
            raise AocrError(f"--init-from {source_dir}: variable {name} has shape {stored_names[name]} there and "
                            f"{variable.shape.as_list()} here")
        variable.load(value, session)
        carried += 1
    shared = len(mapping[0]) - FIRST_CHAR_ID
    log.info("--init-from %s: %d variables from %s; %d of this model's %d characters carried, %d new",
             source_dir, carried, checkpoint, shared, len(target.charset), len(target.charset) - shared)
