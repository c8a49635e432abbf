"""``launcher=k8s-job``: a batch/v1 Job whose pod runs ``train.py`` with ``launcher=local``.

``schema`` (its config), ``kind`` (the Job as the shared Kubernetes code sees it), ``render`` (the
manifest), ``validate`` (the official schema), ``launcher`` (the protocol).
"""
