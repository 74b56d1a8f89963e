"""Sources on the Hugging Face Hub, fetched through huggingface_hub (its cache and offline rules)."""

from __future__ import annotations

from pathlib import Path

from edgepack import progress
from edgepack.errors import HubError
from edgepack.source.local import hf_dir_source
from edgepack.source.model import Source


def check_repo_id(repo_id: str) -> None:
    """huggingface_hub's own rules for a repo id, as one line (`org/..`, `a/b..c`, `a/-b` fail)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise HubError(f"{repo_id!r} is not a valid hub id: use org/name with letters, digits, '-', '_' "
                       "or '.', not starting or ending with '-' or '.', and no '--' or '..'") from None


def hub_source(repo_id: str, revision: str | None, *, trust_remote_code: bool = False) -> Source:
    """Download (or find in huggingface_hub's cache) a model; no *.py unless `trust_remote_code`."""
    check_repo_id(repo_id)
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (
            GatedRepoError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise HubError(f"huggingface-hub is not installed ({exc}); run: pip install huggingface-hub") from None
    patterns = ["*.json", "*.safetensors", "*.model", "*.tiktoken", "*.txt", "*.jinja", "tokenizer*", "README.md"]
    patterns += ["*.py"] if trust_remote_code else []
    ignore = [] if trust_remote_code else ["*.py"]  # a repository's code is fetched only when trusted
    try:
        local = snapshot_download(repo_id, revision=revision, allow_patterns=patterns, ignore_patterns=ignore,
                                  tqdm_class=progress.tqdm_class())
        if not any(Path(local).glob("*.safetensors")):
            # Older repos ship only PyTorch .bin weights; fetch them only then (never both).
            local = snapshot_download(repo_id, revision=revision, allow_patterns=["*.bin"], ignore_patterns=ignore,
                                      tqdm_class=progress.tqdm_class())
    except GatedRepoError:
        raise HubError(f"{repo_id} is gated; accept its license on the Hub and log in with `hf auth login`") from None
    except RepositoryNotFoundError:
        raise HubError(f"{repo_id} was not found on the Hugging Face Hub (or it is private); check the id") from None
    except RevisionNotFoundError:
        raise HubError(f"revision {revision!r} of {repo_id} does not exist") from None
    except LocalEntryNotFoundError:
        raise HubError(
            f"cannot reach the Hugging Face Hub to fetch {repo_id} and it is not in the local cache; "
            "connect to the network, or pass a local model directory") from None
    except OSError as exc:
        raise HubError(f"downloading {repo_id} failed: {exc}") from None
    local = Path(local)
    source = hf_dir_source(local, repo_id)
    return Source("hub", repo_id, local, repo_id.split("/")[-1], revision=local.name, license=source.license)
