"""Fixtures of the dataset-cache tests: the digits as PNG archives, made once per session."""

from __future__ import annotations

import pytest

from data_sources import CountingServer, sha256, tar_of, write_digits_pngs, zip_of


@pytest.fixture(scope="session")
def digits_files(tmp_path_factory):
    """digits/ (PNG class folders), digits.tar, digits.tar.gz, digits.zip, and the tar's sha256."""
    folder = tmp_path_factory.mktemp("digits-src")
    tree = write_digits_pngs(folder)
    served = tmp_path_factory.mktemp("served")
    tar = tar_of(tree, served / "digits.tar")
    tar_of(tree, served / "digits.tar.gz", "w:gz")
    zip_of(tree, served / "digits.zip")
    return {"tree": tree, "served": served, "tar": tar, "sha256": sha256(tar)}


@pytest.fixture
def server(digits_files):
    srv = CountingServer(digits_files["served"]).start()
    yield srv
    srv.stop()
