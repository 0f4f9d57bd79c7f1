/**
 * Before `npm test`: the tests read the real CIFAR-10 (test/support/data.ts says where). On a machine that has
 * it in none of those places (no $CIFAR10_DIR, no ../shared/data/cifar10), it is downloaded into
 * ./data/cifar-10-batches-bin, as `npx tsx src/cli/main.ts data` does, so the README's test command works on a
 * fresh machine (and completed where an interrupted download left part of it). A $CIFAR10_DIR that is set is
 * the user's choice and is left to the tests to read.
 */
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { downloadCifar10 } from '../src/data/download.js';
import { beside, downloaded } from '../test/support/data.js';

if (!process.env.CIFAR10_DIR && !existsSync(beside)) {
  // Also when data/ holds an incomplete copy (an interrupted download): a complete one is left as it is.
  try {
    const result = await downloadCifar10(dirname(downloaded), { log: (line) => console.log(line) });
    if (result.source !== 'existing') console.log(`the tests read the real CIFAR-10: it is now in ${result.dir}`);
  } catch (error) {
    console.error(
      `error: ${error instanceof Error ? error.message : String(error)}\n` +
        'the tests need CIFAR-10: set CIFAR10_DIR to a folder with its binary batches (data_batch_1.bin ... test_batch.bin), ' +
        'or run npx tsx src/cli/main.ts data once a network is reachable',
    );
    process.exitCode = 1;
  }
}
