"""model_card.md: what the published models are, what they were trained on, how well they do, where
they fail, and how to score with them."""

from __future__ import annotations

from tasks.data.store import DatasetInfo
from tasks.reporting.report import RunFacts, baseline_verdict, guard_rule, spread_lines
from tasks.reporting.results import VariantResult
from tasks.reporting.tables import SEED_COLUMNS, markdown_table, seed_rows, summary_rows
from tasks.storage.layout import MODEL_CARD_NAME, MODEL_NAME, REPORT_NAME, VOCABULARY_NAME, variant_file
from tasks.training.variants import VARIANTS


def model_list(variants: dict[str, VariantResult], maxlen: int) -> str:
    """One line per published model: its file, its variant's description, size, input and output."""
    return "\n".join(
        f"- `{variant_file(name, MODEL_NAME)}`: {VARIANTS[name].description}, "
        f"{result.published.parameters:,} parameters; "
        f"input {maxlen} word ids (int), output the probability that the review is positive"
        for name, result in variants.items()
    )


def data_caveats(data_checks: dict | None) -> list[str]:
    """The data checks' warnings and the drift verdict, as model card lines (none when all is usual)."""
    if not data_checks:
        return []
    lines = [
        f"- data check warning, {finding['check']}: {finding['message']}"
        for finding in data_checks["checks"]
        if finding["level"] == "warning"
    ]
    drift = data_checks.get("drift")
    if drift and drift["drifted"]:
        lines.append(
            f"- drift against {data_checks['drift_reference']}: {', '.join(drift['drifted'])} above "
            f"{drift['max_drift']:g} (see {REPORT_NAME})"
        )
    return lines


def raw_text_note(dataset: DatasetInfo, offline: bool) -> str:
    """How raw text becomes ids for this run's models, and how exact that is."""
    if not dataset.vocabulary_uri:
        return (
            "This data set has no word index (a mirror without `imdb_word_index.json` beside it): raw text "
            "cannot be encoded."
        )
    exactness = (
        "exact: encoding the corpus's reviews reproduces the stored ids"
        if offline
        else "close but not exact: Keras' original tokenisation of the canonical reviews is unknown, so encoding "
        "raw text with its word index differs from the stored ids for some reviews"
    )
    return (
        f"Raw text is encoded with `{VOCABULARY_NAME}` in this run (the word -> rank map and the tokenizer spec: "
        "lowercasing, `<br />` removal, token pattern, pad/start/oov ids, index_from, num_words, maxlen, front "
        f'padding and truncation); {exactness}. `make predict TEXT="..."` and `make score INPUT=...` do it for you.'
    )


def render_model_card(facts: RunFacts) -> str:
    """model_card.md: what the published models are, what they were trained on, how well they do,
    where they fail, and how to score with them."""
    source, dataset, decision = facts.run.source, facts.run.dataset, facts.decision
    variants, baseline, data_checks = facts.results.variants, facts.results.baseline, facts.results.data_checks_json
    data, training = facts.run.config.data, facts.run.config.training
    offline = source.kind == "offline"
    blocks = [
        f"# Model card: IMDB review sentiment, SimpleRNN (run {facts.run.run_id})",
        "## Models",
        model_list(variants, data.maxlen),
        f"Trained with the `{training.recipe}` recipe: RMSprop (learning rate {training.learning_rate}), binary "
        f"cross-entropy, batch {training.batch_size}, up to {training.max_epochs} epochs, early stopping on "
        f"val_loss (patience {training.patience}, from epoch {training.start_from_epoch}), best val_loss "
        f"weights kept; {training.seeds} seed(s) per variant, the lowest val_loss published; up to "
        f"{training.restarts} restart(s) with a derived seed when a variant is under-trained against the "
        "baseline or stalls at chance.",
        "## Data",
        "\n".join(
            [
                f"- {source.description}"
                + (" **Metrics are not comparable with runs on the canonical data.**" if offline else ""),
                "- reviews: " + ", ".join(f"{name} {count:,}" for name, count in dataset.rows.items()),
                f"- vocabulary: the {data.num_words - 3:,} most frequent words of the training reviews "
                f"({data.num_words} ids with pad 0, start 1, out-of-vocabulary 2); every rarer word is the same "
                "out-of-vocabulary id",
                f"- length: the last {data.maxlen} tokens of each review (longer reviews lose their beginning; "
                "shorter ones are zero-padded at the front)",
                *data_caveats(data_checks),
            ]
        ),
        "## Intended use",
        "A small, reproducible baseline for binary sentiment of English movie reviews: teaching, benchmarking "
        "pipeline changes and comparing recurrent formulations. Not for decisions about people, other domains or "
        "languages, or any use where a wrong label costs more than a wrong guess on a movie review: with a "
        "500-word vocabulary and 100 tokens, accuracy is about 0.78, and sarcasm, negation far from the end of a "
        "review and rare words are beyond it.",
        "## Test metrics",
        baseline_verdict(variants, baseline),
        markdown_table(summary_rows(variants, baseline)),
        "\n".join(spread_lines(variants)),
        "## Under-trained, stalls and restarts",
        guard_rule(training, baseline),
        markdown_table(seed_rows(variants), SEED_COLUMNS),
        "## Champion",
        f"{'Promoted' if decision.promote else 'Not promoted'}: {decision.reason}.",
        "## How to score",
        "```python\n"
        "import keras\n"
        f'model = keras.models.load_model("{variant_file("embedding", MODEL_NAME)}", safe_mode=True)'
        "  # or tasks.training.evaluation.load_model(uri)\n"
        "probabilities = model.predict(token_ids)  # token_ids: int array (n, "
        f"{data.maxlen}) in this data set's id scheme\n"
        "```\n"
        f"Token ids must follow the data set's scheme: the Parquet splits at `{dataset.uri}` hold ready-made ids. "
        + raw_text_note(dataset, offline),
    ]
    return "\n\n".join(blocks) + "\n"


def write_model_card(facts: RunFacts) -> None:
    """The run's `model_card.md`, in the run's folder."""
    (facts.run.run_dir / MODEL_CARD_NAME).write_text(render_model_card(facts))
