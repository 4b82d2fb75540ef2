// `strata plan`: the plan as rows a person (or a tool, with --json) can read before building.
import type { BuildPlan, PlannedStep } from './plan.js';

export interface DescribedStep {
  stage: string;
  line: number;
  instruction: string;
  /** 'layer': changes the filesystem (a layer unless the diff turns out empty); 'config': metadata only */
  effect: 'layer' | 'config';
  /** for filesystem steps, when the store was asked: whether the step cache already holds the result */
  cached?: boolean;
}

export function describePlan(plan: BuildPlan, cached?: Map<PlannedStep, boolean>): { file: string; stages: { name: string; base: string }[]; steps: DescribedStep[] } {
  const stages = plan.stages.map((s) => ({
    name: s.name ?? String(s.index),
    base: s.base.kind === 'scratch' ? 'scratch' : s.base.kind === 'stage' ? `stage ${s.base.index}` : s.base.ref,
  }));
  const steps = plan.stages.flatMap((s) => s.steps.map((step): DescribedStep => ({
    stage: s.name ?? String(s.index),
    line: step.line,
    instruction: step.text,
    effect: step.kind === 'fs' ? 'layer' : 'config',
    cached: cached?.get(step),
  })));
  return { file: plan.file, stages, steps };
}

export function formatPlan(described: ReturnType<typeof describePlan>): string {
  const rows = [`${described.file}: ${described.steps.length} steps`];
  for (const stage of described.stages) {
    rows.push(`stage ${stage.name} FROM ${stage.base}`);
    for (const step of described.steps.filter((s) => s.stage === stage.name)) {
      const effect = step.effect === 'config' ? 'config' : step.cached ? 'CACHED' : 'LAYER ';
      rows.push(`  ${`${described.file}:${step.line}`.padEnd(18)} ${effect}  ${step.instruction}`);
    }
  }
  return rows.join('\n');
}
