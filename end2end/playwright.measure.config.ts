import base from "./playwright.config";
import { defineConfig } from "@playwright/test";

// `make bench`: the keystroke measurement, against a release build (scripts/bench.sh).
export default defineConfig({ ...base, testDir: "./measure", reporter: "list" });
