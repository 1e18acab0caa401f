"""A memory-editing policy for the context-editing tasks (:mod:`mnemax.envs.tasks.context_edit`).

In those tasks the memory *is* the observation: the rows ``0 .. C-1`` are the context slots, row ``C`` is
the current item, and the agent's own edits decide what the slots hold next. The agent therefore needs
no recurrent state. :class:`ContextEditor` embeds every row (tag, three tokens and age), lets the rows
attend to each other in a few pre-norm transformer layers, and reads the four action components off the
row embeddings:

* ``op`` (keep / write / delete / merge) from the current item's row;
* ``slot`` and ``source`` by pointing: an additive score per row (``v . tanh(W_r row + W_i item)``),
  over the ``C`` slots for ``slot`` and over the slots and the current item for ``source``. With
  ``edit_head="joint"`` the op and the slot are one choice instead, among keep and each edit op at each
  slot (``1 + 3 C``), every op pointing with a head of its own: drawn apart, a merge pays only when
  ``merge`` and the right slot come up together, while writing into a free slot pays alone, so a
  policy that has learned to write rarely tries merging (MultiHop needs merges to fit its chains);
* ``answer`` by comparing a query vector from the current item with the embeddings of the value tokens
  (tied weights: the answer is a value token the agent can copy from a slot). The task grades the answer
  only at queries; at every other step the editor answers 0 with probability one, so those steps give
  the answer head neither gradient noise nor entropy;
* the value estimate (used by PPO, ignored by DCPO) from the current item and the mean over rows.

With ``relations=True`` every row also gets the 3 x 3 table of which of its tokens equal which of the
current item's (padding excluded, :func:`token_matches`): whether a slot holds the same key (an update
overwrites it), the link before the item (``a -> b`` when the item is ``b -> v``: a merge makes the
compound) or the answer to a query. Attention over learned embeddings can find such matches too, but has
to learn equality for every token first.

Slots carry no position embedding, so the policy treats them as a set: permuting the slots permutes the
``slot``/``source`` logits alike and changes nothing else, and the same parameters serve any
``context_size``. The network has the call signature of
:class:`~mnemax.agents.actor_critic.ActorCritic` (``carry`` is always ``()``), so the trainers run it
unchanged; select it with ``agent="context_editor"`` (``mnemax.agents.make``, ``--agent`` on the command
line). The sizes of the rows, the vocabulary and the tags are read off the task's spaces; the one fact of
the observation format the spaces cannot say, which tags ask for an answer, is the task's published
``QUERY_TAGS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mnemax.agents.actor_critic import _pad_components, action_sizes
from mnemax.agents import distributions
from mnemax.agents.distributions import PAD_LOGIT
from mnemax.agents.encoders import dense
from mnemax.envs.core import spaces
from mnemax.envs.tasks.context_edit import QUERY_TAGS


class ContextEditor(nn.Module):
    """Transformer over the context slots and the current item, with pointer heads.

    ``apply(params, carry, obs, resets) -> ((), logits, value)`` with ``obs int32[T, B, C + 1, 5]``
    (rows ``[tag, tok1, tok2, tok3, age]``), ``logits [T, B, 4, N]`` for the action components
    ``[op(4), slot(C), source(C + 1), answer(V)]`` (padded to ``N``; see
    :mod:`mnemax.agents.distributions`) and ``value [T, B]``. ``resets`` is accepted and unused. With
    ``edit_head="joint"`` the logits are ``[T, B, 3, N]`` for ``[edit(1 + 3 C), source, answer]``, and
    :meth:`env_action` turns such actions into the task's ``[op, slot, source, answer]``.

    Attributes:
        num_keys, num_values: the task's vocabulary: tokens ``1 .. num_keys`` are keys and
            ``num_keys + 1 .. num_keys + num_values`` values (answer ``v`` is token ``num_keys + 1 + v``).
        max_age: the largest age the observation can show (the stream length); ages are scaled by it.
        num_tags: item tags ``0 .. num_tags - 1``; query_tags: those of the items that ask for an answer.
        features: width of the row embeddings and of every layer.
        num_layers, num_heads: the self-attention stack.
        edit_head: ``"factored"`` (op and slot drawn apart) or ``"joint"`` (one choice of both).
        relations: add each row's token matches with the current item to its input.
    """

    num_keys: int
    num_values: int
    max_age: int
    num_tags: int
    query_tags: tuple[int, ...]
    features: int = 64
    num_layers: int = 2
    num_heads: int = 4
    edit_head: str = "factored"
    relations: bool = False

    @nn.nowrap
    def initialize_carry(self, batch_size: int):
        return ()

    @nn.nowrap
    def env_action(self, action: jax.Array) -> jax.Array:
        """Actions ``[..., K]`` drawn from this network's logits in the task's format ``[..., 4]``.

        The joint edit index is ``0`` for keep and ``1 + 3 slot + (op - 1)`` for write (op 1), delete
        (2) and merge (3) at ``slot``."""
        if self.edit_head == "factored":
            return action
        edit, rest = action[..., 0], action[..., 1:]
        op = jnp.where(edit == 0, 0, 1 + (edit - 1) % 3)
        slot = jnp.where(edit == 0, 0, (edit - 1) // 3)
        return jnp.concatenate([op[..., None], slot[..., None], rest], axis=-1)

    @nn.nowrap
    def agent_action(self, action: jax.Array, relevant: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The inverse of :meth:`env_action`, for a teacher's action ``[..., 4]`` and the mask of its
        components that matter (``[..., 4]``, as :func:`~mnemax.envs.tasks.context_edit_curators.demonstration`
        gives them): both in this network's format. The joint edit matters where the op or the slot does."""
        if self.edit_head == "factored":
            return action, relevant
        op, slot = action[..., 0], action[..., 1]
        edit = jnp.where(op == 0, 0, 1 + 3 * slot + (op - 1))
        action = jnp.concatenate([edit[..., None], action[..., 2:]], axis=-1)
        relevant = jnp.concatenate([relevant[..., :1] | relevant[..., 1:2], relevant[..., 2:]], axis=-1)
        return action, relevant

    @nn.compact
    def __call__(self, carry, obs, resets):
        d = self.features
        rows = obs.astype(jnp.int32)  # [..., R, tag + tokens + age]
        size = rows.shape[-2] - 1  # context slots
        tokens = nn.Embed(self.num_keys + self.num_values + 1, d, name="tokens")
        tags = nn.Embed(self.num_tags, d, name="tags")(rows[..., 0])
        toks = tokens(rows[..., 1:-1])  # [..., R, 3, d]
        age = rows[..., -1].astype(jnp.float32)
        age_features = jnp.stack([jnp.log1p(age) / np.log1p(self.max_age), age / self.max_age], axis=-1)
        x = jnp.concatenate([tags, toks.reshape(toks.shape[:-2] + (-1,)), age_features], axis=-1)
        if self.relations:
            x = jnp.concatenate([x, token_matches(rows).astype(jnp.float32)], axis=-1)
        x = dense(d)(x)
        is_item = (jnp.arange(size + 1) == size).astype(jnp.float32)[:, None]
        x = x + is_item * self.param("item_row", nn.initializers.normal(0.02), (d,))

        for _ in range(self.num_layers):
            y = nn.LayerNorm()(x)
            x = x + nn.MultiHeadDotProductAttention(num_heads=self.num_heads, qkv_features=d)(y)
            y = nn.LayerNorm()(x)
            x = x + dense(d)(nn.gelu(dense(2 * d)(y)))
        x = nn.LayerNorm()(x)

        item = x[..., size, :]
        summary = jnp.concatenate([item, x.mean(axis=-2)], axis=-1)
        op = dense(4, scale=0.01)(nn.relu(dense(d)(summary)))
        if self.edit_head == "joint":  # keep, then [slot, op] for write, delete and merge
            per_op = [_pointer(x[..., :size, :], item, d, f"{name}_slot") for name in ("write", "delete", "merge")]
            at_slot = jnp.stack(per_op, axis=-1) + op[..., None, 1:]  # [..., C, 3]
            edits = (jnp.concatenate([op[..., :1], at_slot.reshape(at_slot.shape[:-2] + (-1,))], axis=-1),)
        else:
            edits = (op, _pointer(x[..., :size, :], item, d, "slot"))
        source = _pointer(x, item, d, "source")
        query = dense(d, scale=0.01)(item)
        values = tokens.embedding[self.num_keys + 1 : self.num_keys + 1 + self.num_values]
        answer = query @ values.T
        # The answer is read only at queries: elsewhere all mass goes to answer 0, so those steps add
        # neither gradient noise nor entropy to a component that has no effect.
        asked = jnp.isin(rows[..., size, 0], jnp.asarray(self.query_tags))[..., None]
        answer = jnp.where(asked, answer, jnp.where(jnp.arange(self.num_values) == 0, 0.0, PAD_LOGIT))
        logits = jnp.concatenate([*edits, source, answer], axis=-1)
        value = dense(1, scale=1.0)(nn.relu(dense(d)(summary)))[..., 0]
        sizes = tuple(e.shape[-1] for e in edits) + (size + 1, self.num_values)
        return (), _pad_components(logits, sizes), value


def token_matches(rows: jax.Array) -> jax.Array:
    """``[..., R, 9]`` bool: entry ``3 i + j`` of a row says its token ``i`` equals token ``j`` of the current
    item (the last row), padding never matching; ``rows`` is ``[..., R, 5]`` (``[tag, tok1, tok2, tok3,
    age]``)."""
    own, current = rows[..., 1:-1], rows[..., -1:, 1:-1]
    match = (own[..., :, None] == current[..., None, :]) & (own[..., :, None] > 0)
    return match.reshape(match.shape[:-2] + (9,))


def _pointer(rows: jax.Array, item: jax.Array, features: int, name: str) -> jax.Array:
    """Additive pointer scores ``[..., R]``: ``v . tanh(W_r row + W_i item)`` for every row."""
    per_row = nn.Dense(features, name=f"{name}_rows")(rows)
    per_item = nn.Dense(features, use_bias=False, name=f"{name}_item")(item)
    return dense(1, scale=0.01)(jnp.tanh(per_row + per_item[..., None, :]))[..., 0]


def make_context_editor(
    observation_space: spaces.Space,
    action_space: spaces.Space,
    *,
    hidden_size: int = 64,
    memory: str = "none",
    memory_config: Mapping[str, Any] | None = None,
    num_layers: int = 2,
    num_heads: int = 4,
    edit_head: str = "factored",
    relations: bool = False,
) -> ContextEditor:
    """A :class:`ContextEditor` of width ``hidden_size`` for a context-editing task's spaces. ``memory`` and
    ``memory_config`` are ignored: the context is the editor's memory. Raises ``ValueError`` for the spaces
    of any other task."""
    sizes = action_sizes(action_space)
    shape = getattr(observation_space, "shape", ())
    if len(shape) != 2 or shape[1] != 5 or len(sizes) != 4 or sizes[:3] != (4, shape[0] - 1, shape[0]):
        raise ValueError(
            "the context editor needs a context-editing task (observation [C + 1, 5], action "
            f"MultiDiscrete [4, C, C + 1, V]); got observation {shape} and action sizes {sizes}"
        )
    if not isinstance(relations, bool):  # from the command line "true" arrives as a string
        raise ValueError(f"relations must be True or False, got {relations!r}")
    if edit_head not in ("factored", "joint"):
        raise ValueError(f"edit_head must be 'factored' or 'joint', got {edit_head!r}")
    high = np.asarray(observation_space.high)  # rows [tag, tok1, tok2, tok3, age]
    num_values = sizes[3]
    num_keys = int(high[..., 1:-1].max()) - num_values
    max_age = max(1, int(high[..., -1].max()))
    num_tags = int(high[..., 0].max()) + 1
    editor = ContextEditor(
        num_keys=num_keys, num_values=num_values, max_age=max_age, num_tags=num_tags, query_tags=QUERY_TAGS,
        features=hidden_size, num_layers=num_layers, num_heads=num_heads, edit_head=edit_head, relations=relations,
    )  # fmt: skip
    if editor.features % editor.num_heads:
        raise ValueError(f"hidden_size ({hidden_size}) must be divisible by num_heads ({editor.num_heads})")
    return editor


def greedy_curator(network: ContextEditor, params):
    """The greedy policy of a trained editor as a curator ``(obs, env_params) -> action`` (see
    :mod:`mnemax.envs.tasks.context_edit_curators`), so that ``run_curator`` scores it like the scripted ones."""

    def curator(obs: jax.Array, env_params) -> jax.Array:
        _, logits, _ = network.apply(params, (), obs[None, None], jnp.zeros((1, 1), bool))
        return network.env_action(distributions.mode(logits[0, 0]))

    return curator
