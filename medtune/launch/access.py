"""Whether this machine can get a Hugging Face Hub model a recipe names: cached, or reachable with its token.

Pre-flight asks before any stage runs. Nothing is downloaded: the local cache is looked at first, and with the
Hub allowed one metadata request (with a timeout) tells "missing", "gated" and "unreachable" apart, each with
its fix. (Hub datasets: medtune.core.hub.hub_dataset_problem.)
"""
from __future__ import annotations

from ..core.hub import hub_cache_dir, hub_offline

# Organisations whose models are gated on the Hub: only an account that has accepted the licence gets the weights.
GATED_ORGS = ("meta-llama", "mistralai")
TIMEOUT_S = 10.0
LOGIN = "hf auth login"  # huggingface_hub 1.x: the old `huggingface-cli login` only prints a deprecation notice


def page(repo_id: str) -> str:
    return f"https://huggingface.co/{repo_id}"


def is_gated_org(repo_id: str) -> bool:
    return repo_id.split("/")[0].lower() in GATED_ORGS


def login_fix(repo_id: str) -> str:
    return f"run `{LOGIN}` (or set HF_TOKEN) with a Hugging Face account that has accepted the licence on {page(repo_id)}"


def offline_fix(repo_id: str) -> str:
    return (f"fetch it once with the Hub on (`hf download {repo_id}` with HF_HUB_OFFLINE unset), or copy a Hugging Face "
            "cache holding it (HF_HOME) to this machine")


def model_problem(repo_id: str) -> str | None:
    """Why the model's weights cannot be had here, or None: in the Hugging Face cache, or the Hub serves them."""
    from huggingface_hub import get_token, try_to_load_from_cache

    # A cached snapshot serves even when the Hub refuses or cannot be reached (huggingface_hub falls back to it).
    if isinstance(try_to_load_from_cache(repo_id, "config.json", cache_dir=hub_cache_dir()), str):
        return None
    token = get_token()
    gated = is_gated_org(repo_id)
    if hub_offline():
        text = f"{repo_id} is not in the Hugging Face cache and the Hub is off (HF_HUB_OFFLINE is set): {offline_fix(repo_id)}"
        return text + (f"; the model is gated, so first {login_fix(repo_id)}" if gated and not token else "")
    if gated and not token:  # said without asking: the Hub would only refuse
        return f"{repo_id} is gated and no Hugging Face token is set: {login_fix(repo_id)}"
    return _remote_problem(repo_id, token)


def _remote_problem(repo_id: str, token: str | None) -> str | None:
    """One HEAD request for the model's config.json: what the download would meet, without downloading."""
    import httpx
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RemoteEntryNotFoundError, RepositoryNotFoundError

    try:
        get_hf_file_metadata(hf_hub_url(repo_id, "config.json"), token=token, timeout=TIMEOUT_S)
    except GatedRepoError:  # before RepositoryNotFoundError, its parent
        if not token:
            return f"{repo_id} is gated and no Hugging Face token is set: {login_fix(repo_id)}"
        return (f"{repo_id} is gated and the account of this machine's token has no access yet: accept the licence on "
                f"{page(repo_id)} (approval can take a while), or `{LOGIN}` with an account that has")
    except RepositoryNotFoundError:
        return (f"{repo_id}: no such model on the Hugging Face Hub, or a private one this token cannot see; check the "
                "spelling (Hub ids are case-sensitive)")
    except RemoteEntryNotFoundError:
        return f"{repo_id} has no config.json on the Hub: not a transformers model"
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "an error"
        return f"the Hugging Face Hub answered {status} for {repo_id} and it is not cached here; try again later"
    except (httpx.HTTPError, OSError) as exc:
        return (f"the Hugging Face Hub cannot be reached ({type(exc).__name__}: {exc}) and {repo_id} is not cached "
                f"here: connect this machine, or {offline_fix(repo_id)}")
    return None
