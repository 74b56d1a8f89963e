"""Stage 3: what each quant costs: perplexity, KL divergence, tasks, speed, memory, and the report."""

from edgepack.measure.bench import bench_sweep
from edgepack.measure.speed import measure_speed
from edgepack.measure.evaluate import EvalPlan, evaluate
from edgepack.measure.refcache import divergence, reference_log_probs
from edgepack.measure.scoring import EvalSettings, perplexity

__all__ = ["EvalPlan", "EvalSettings", "bench_sweep", "divergence", "evaluate", "measure_speed", "perplexity", "reference_log_probs"]
