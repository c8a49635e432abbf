"""``launcher=local``: train in this process. Its schema (``schema``) and launcher (``launcher``)."""
