"""Define a selector in a script and use it like a built-in, without writing a package.

Run from the repository root:  python examples/custom_selector.py
"""

from pathlib import Path

from iclkit import Example, Pool, PromptBuilder, Selection, Selector, register_selector


class SharedWordsSelector(Selector):
    """Pick the pool examples sharing the most words with the query (score = words shared)."""

    def __init__(self, min_shared: int = 1) -> None:
        self.min_shared = min_shared  # constructors only store options (scikit-learn style)

    def select(self, query: Example, k: int, *, exclude: frozenset[int] = frozenset()) -> Selection:
        words = set(query.text.lower().split())
        shared = {
            i: len(words & set(self.pool[i].text.lower().split())) for i in self.candidates(exclude)
        }
        ranked = sorted(
            (i for i in shared if shared[i] >= self.min_shared), key=lambda i: -shared[i]
        )[:k]
        # Never return an index in `exclude` (the query itself when it is in the pool).
        return Selection(tuple(ranked), tuple(float(shared[i]) for i in ranked))


register_selector("shared-words", SharedWordsSelector)

pool = Pool.load(Path(__file__).parent / "data" / "reviews.jsonl")
builder = PromptBuilder(
    selector={"name": "shared-words", "min_shared": 1},
    orderer="reverse",  # the best match sits next to the query
    k=3,
    allow_fewer=True,  # a query may share words with fewer than k examples
).fit(pool)
prompt = builder.build("the story is dull and the acting wooden")
print(prompt.text)
print("\nchosen (index, words shared):", [(d.index, d.score) for d in prompt.demonstrations])
