#!/usr/bin/env node
import '../dist/strata.mjs';
