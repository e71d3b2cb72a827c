"""``databuild ui``: a read-only web UI over the cluster and the Build Event Log.

:mod:`.data` turns a namespace snapshot into the JSON the pages draw; :mod:`.server`
serves that JSON and the static assets in ``static/`` (all shipped in the package: the
UI works offline, with no CDN).
"""
