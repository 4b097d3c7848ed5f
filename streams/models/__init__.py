"""Published model versions: the checkpoint store, building a version's item index, and
loading a ready version as the `LiveModel` a worker serves.

Imports: `streams.recall`, `streams.state` (the live-version key), `towers`, `index`;
never faust or `streams.worker`.
"""
