"""Importing a library as a profile: BibTeX (as Zotero and Google Scholar write it), a Zotero
CSV export, a list of ids; from `digest subscribers add --profile` and the manage page's
upload, with recorded arXiv API responses on a loopback server for the seeds."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from digest.cli import app
from digest.db import make_engine
from digest.models import Subscriber
from digest.profile_files import read_library
from digest.usecases.digests import profiles_for
from tests.feed_server import FeedServer, Response, running_server
from tests.test_seed_papers import ATTENTION, _env, _fetch_settings, _paper
from tests.web_support import Web, active_subscriber, build_services

LIBRARIES = Path(__file__).parent / "fixtures" / "libraries"


@pytest.fixture
def arxiv() -> Iterator[FeedServer]:
    with running_server() as server:
        yield server


def test_bibtex_entries_become_seeds_interest_text_and_offered_authors():
    library = read_library((LIBRARIES / "zotero.bib").read_bytes())
    assert library.seeds == ["1706.03762", "2005.14165"]  # url/note, and Scholar's journal
    assert [t.split(".")[0] for t in library.texts] == [
        "Robust and digital hyper-polarization protocol of nuclear spins",
        "Preparing the Gutzwiller wave function for attractive SU(3) fermions on a quantum "
        "computer",
    ]
    assert library.offered_authors == ["Michal Hajdušek", "Rodney Van Meter"]  # TeX or not
    assert library.summary() == (
        "Used 4 of 6 entries from the BibTeX file: 2 as seed papers (arXiv), 2 as interest "
        "text (title and abstract); not used: 1 unreadable BibTeX blocks, 1 DOIs without an "
        "arXiv id (no title or abstract to read)."
    )


def test_zotero_csv_and_id_lists():
    csv_library = read_library((LIBRARIES / "zotero.csv").read_bytes())
    assert csv_library.kind == "Zotero CSV" and csv_library.seeds == ["1706.03762"]
    assert len(csv_library.texts) == 2 and csv_library.offered_authors == ["Michal Hajdušek"]
    assert "not used: 1 entries without a title or id" in csv_library.summary()
    ids = read_library((LIBRARIES / "ids.txt").read_bytes())
    assert ids.seeds == ["1706.03762", "2005.14165", "2401.00001", "2312.00752"]
    assert ids.entries == 6 and "1 lines that are neither an arXiv id nor a DOI" in ids.summary()
    assert read_library(b"\xff\xfe\x00garbage").error == "the file is not UTF-8 text"
    assert read_library(b"   \n").summary().startswith("Nothing imported: no entries found")


def _subscriber(engine, address: str) -> Subscriber:
    with Session(engine) as session:
        return session.exec(select(Subscriber).where(Subscriber.email == address)).one()


def test_subscribers_add_with_a_profile_file(tmp_path, smtp_sink, arxiv):
    env = _env(tmp_path, smtp_sink, arxiv)
    runner = CliRunner()
    assert runner.invoke(app, ["init"], env=env).exit_code == 0
    arxiv.route("/api/query", Response(body=ATTENTION))  # knows 1706.03762 only
    bib = str(LIBRARIES / "zotero.bib")

    added = runner.invoke(
        app, ["subscribers", "add", "ada@example.org", "--confirmed", "--profile", bib], env=env
    )

    assert added.exit_code == 0, added.output
    assert "Used 4 of 6 entries from the BibTeX file" in added.output
    assert "Frequent authors, not followed" in added.output
    assert "could not fetch seed paper(s) 2005.14165" in added.output
    engine = make_engine(env["DIGEST_DATABASE_URL"])
    ada = _subscriber(engine, "ada@example.org")
    assert ada.seed_papers == ["1706.03762", "2005.14165"] and ada.authors == []
    assert "Gutzwiller wave function" in ada.library_text
    assert _paper(engine, "1706.03762") is not None
    with Session(engine) as session:
        [profile] = profiles_for(session, [ada], context=None)
    assert "Gutzwiller" in profile.interests  # the library is read as interest text

    follows = runner.invoke(
        app,
        [
            "subscribers",
            "add",
            "bob@example.org",
            "--confirmed",
            "--profile",
            bib,
            "--follow-frequent-authors",
        ],
        env=env,
    )
    assert follows.exit_code == 0, follows.output
    assert _subscriber(engine, "bob@example.org").authors == ["Michal Hajdušek", "Rodney Van Meter"]

    missing = runner.invoke(
        app,
        ["subscribers", "add", "eve@example.org", "--profile", str(tmp_path / "no.bib")],
        env=env,
    )
    assert missing.exit_code != 0 and "--profile" in missing.output
    with Session(engine) as session:  # nobody was added
        assert (
            session.exec(select(Subscriber).where(Subscriber.email == "eve@example.org")).first()
            is None
        )


def test_the_manage_page_imports_an_upload_and_follows_only_ticked_authors(settings, arxiv):
    arxiv.route("/api/query", Response(body=ATTENTION))
    services = build_services(settings.model_copy(update={"fetch": _fetch_settings(arxiv)}))
    web = Web(services)
    try:
        sid = active_subscriber(services, "reader@example.com")
        path = f"/manage/{services.tokens.dumps('manage', sid)}"
        assert 'enctype="multipart/form-data"' in web.client.get(path).text
        data = (LIBRARIES / "zotero.csv").read_bytes()
        answer = web.client.post(
            f"{path}/import",
            data={"csrf_token": web.csrf(path)},
            files={"library": ("My Library.csv", data, "text/csv")},
        )
        web.drain()
        assert answer.status_code == 200
        assert "Used 3 of 4 entries from the Zotero CSV file" in answer.text
        assert re.search(r'name="author" value="Michal Hajdušek"', answer.text)
        reader = _subscriber(services.engine, "reader@example.com")
        assert reader.seed_papers == ["1706.03762"] and reader.authors == []
        assert "Entanglement distribution" in reader.library_text
        assert _paper(services.engine, "1706.03762") is not None  # fetched after the response
        assert "holds the text of 2 imported papers" in web.client.get(path).text

        # A library is larger than any form: the upload alone may exceed the 16 KB body cap.
        large = b"# exported list\n" * 4000 + b"2401.00001\n"
        big = web.client.post(
            f"{path}/import",
            data={"csrf_token": web.csrf(path)},
            files={"library": ("ids.txt", large, "text/plain")},
        )
        assert len(large) > 3 * services.settings.web.max_body_bytes and big.status_code == 200
        assert "Used 1 of 1 entries from the list of ids file" in big.text
        assert web.post_form(path, interests="x" * 20_000).status_code == 413  # other forms not
        web.drain()

        followed = web.post_form(f"{path}/follow", author="Michal Hajdušek")
        assert "Now following: Michal Hajdušek." in followed.text
        assert _subscriber(services.engine, "reader@example.com").authors == ["Michal Hajdušek"]

        refused = web.client.post(
            f"{path}/import",
            data={"csrf_token": web.csrf(path)},
            files={"library": ("x.bin", b"\xff\xfe\x00", "application/octet-stream")},
        )
        assert (
            refused.status_code == 400 and "Nothing imported: the file is not UTF-8" in refused.text
        )
    finally:
        web.close()
        services.close()
