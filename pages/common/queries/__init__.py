"""Every read query the app issues, in one place, each a cached function.

The analysis store is opened read-only (``pipeline.store.open_readonly``) and cached
per file identity (path, inode, mtime): when the pipeline swaps in a new store the
identity changes, the next rerun opens the new file and its runs appear, while
sessions keep working meanwhile. Each query uses its own cursor (a DuckDB
connection is not thread-safe); every value is bound, and identifiers come only
from constants here.

The queries are grouped by what they serve (``base``: the connection and run-level
queries; ``samples``, ``maps``, ``training``, ``truncation``, ``models``, ``runs``);
pages use them through this package: ``queries.sample_page(...)``.
"""

from pages.common.queries.base import (  # noqa: F401
    SPACE, StoreRef, class_counts, classes, issue_ranking, own_names, own_predictors, runs,
)
from pages.common.queries.samples import (  # noqa: F401
    SORTABLE, SampleFilter, SampleOrder, confusion, count_among_flagged, evidence, filter_bounds, loss_by_rating,
    loss_histogram, meta_columns, meta_values, neighbour_spaces, neighbours, next_suspect, occlusion, per_class,
    predictions_for, sample_count, sample_detail, sample_meta, sample_page, shap_classes, shap_tokens, suspects,
    top_loss,
)
from pages.common.queries.maps import (  # noqa: F401
    clusters, map_box, map_points, spaces,
)
from pages.common.queries.training import (  # noqa: F401
    information_plane, layer_histograms, layer_stats, model_curves, sweep_curves, sweep_runs, sweeps,
    telemetry_models, training_batches, training_epochs,
)
from pages.common.queries.truncation import (  # noqa: F401
    LENGTH_BUCKETS, accuracy_by_length, harmed, length_vs_loss, truncation_detail, truncation_families,
)
from pages.common.queries.models import (  # noqa: F401
    CALIBRATION_BINS, agreement, calibration, disagreements, predictor_class_accuracy, predictor_labels, predictors,
)
from pages.common.queries.comparison import (  # noqa: F401
    changed_predictions, class_accuracy_change, prediction_flows, rank_moves, relabeled, run_settings, shared_texts,
)
