"""The background knowledge base (fuzzinit/knowledge/*.md) and which of
its topics a failure involves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fuzzinit.errors import FuzzinitError

FOLDER = Path(__file__).resolve().parent.parent / "knowledge"
# Report order.
ORDER = ("cr_pinning", "fred", "idt_delivery", "double_fault", "sev_vc",
         "ghcb", "tdx_ve", "fsgsbase_paranoid", "pcid", "cet", "lass", "nmi",
         "console")


@dataclass(frozen=True)
class Topic:
    id: str
    title: str
    paragraphs: tuple[str, ...]
    sources: tuple[str, ...]


def load_topic(topic_id: str) -> Topic:
    path = FOLDER / f"{topic_id}.md"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise FuzzinitError(f"knowledge base: {path}: {exc.strerror}") from exc
    if not lines or not lines[0].startswith("# ") or "Sources:" not in lines:
        raise FuzzinitError(f"knowledge base: {path}: expected '# Title',"
                            " paragraphs and 'Sources:'")
    cut = lines.index("Sources:")
    paragraphs = tuple(x.strip() for x in lines[1:cut] if x.strip())
    sources = tuple(x.strip()[2:] for x in lines[cut + 1:]
                    if x.strip().startswith("- "))
    return Topic(topic_id, lines[0][2:].strip(), paragraphs, sources)


def topics_for(chain: list[str], core_ops: list[str]) -> list[str]:
    """Topic ids a failure involves, from its chain and its causal core:
    only what the failure needs, so nothing unrelated is explained."""
    text = "\n".join(chain)
    found: set[str] = set()
    if "setup_cr_pinning" in core_ops or "pinned CR4 bits" in text:
        found.add("cr_pinning")
    if "FRED" in text:
        found.add("fred")
    if "raises #VC" in text:
        found.add("sev_vc")
    if any(w in text for w in ("GHCB", "vc_no_ghcb", "handle_vc_boot_ghcb",
                               "__sev_get_ghcb")):
        found.add("ghcb")
    if "#VE" in text:
        found.add("tdx_ve")
    if " IDT" in text:
        found.add("idt_delivery")
    if "SDM table 6-5" in text or "while delivering #DF" in text:
        found.add("double_fault")
    if "paranoid_entry" in text or "RDGSBASE" in text:
        found.add("fsgsbase_paranoid")
    if "PCIDE" in text:
        found.add("pcid")
    if "CET" in text:
        found.add("cet")
    if "LASS" in text:
        found.add("lass")
    if "NMI arrives" in text:
        found.add("nmi")
    return [t for t in ORDER if t in found]
