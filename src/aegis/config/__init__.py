"""Config layer: schemas, value checks, resolvers and validation.

Nothing here imports torch or lightning.
"""
