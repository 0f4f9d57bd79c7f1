/**
 * Where tests read the real CIFAR-10: $CIFAR10_DIR, else ../shared/data/cifar10 beside the repository, else
 * ./data/cifar-10-batches-bin (where `data` downloads it), else /work/shared/data/cifar10.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const beside = fileURLToPath(new URL('../../../shared/data/cifar10', import.meta.url));
export const downloaded = fileURLToPath(new URL('../../data/cifar-10-batches-bin', import.meta.url));

export const CIFAR10_TEST_DIR = process.env.CIFAR10_DIR || ([beside, downloaded].find((dir) => existsSync(dir)) ?? '/work/shared/data/cifar10');
