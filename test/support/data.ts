/** Where tests read the real CIFAR-10: $CIFAR10_DIR, else ../shared/data/cifar10 beside the repository. */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const beside = fileURLToPath(new URL('../../../shared/data/cifar10', import.meta.url));

export const CIFAR10_TEST_DIR = process.env.CIFAR10_DIR ?? (existsSync(beside) ? beside : '/work/shared/data/cifar10');
