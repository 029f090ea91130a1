"""The ten seed users of fixtures/users.json, as the tests expect them (ids 1..10)."""

SEED_NAMES = [
    "John", "Mary", "Mike", "Frank", "Stephanie",
    "Richard", "Sonia", "Charlie", "Rowan", "Victoria",
]  # fmt: skip
