#!/usr/bin/env python3
"""
The same short fine-tuning run as `sfp-gpu train --pretrained ... --sfp-rate 0.3 [--hard-prune]`, in PyTorch,
with the SFP code's own semantics (pruning_cifar10_resnet.py, Mask.do_mask): a cross-check that what our
engine measures is the algorithm's behaviour and not our engine's.

It reads our safetensors checkpoint (PyTorch names), trains ResNet-20 with option-A shortcuts
(torch.cat((x, x.mul(0)), 1)), SGD with Nesterov momentum 0.9 and weight decay 5e-4 on every parameter,
batch 128, random crop (pad 4) and flip, a per-step cosine rate, and:
  soft: masks of the floor(C_out * P) smallest-L2 filters of every conv, applied in place before training and
        after every epoch; gradients, momentum and BN untouched.
  hard: masks chosen once from the pretrained weights; weights and momentum re-zeroed after every step.
After each masking, BN statistics are re-estimated from 50 training batches (as --bn-recalibrate 50).
Writes OUT/run.json and one JSON line per epoch to OUT/metrics.jsonl, in the layout of `train`'s, so
`sfp-gpu report --run OUT` and `report --compare` read them.

With --trace ENGINE.safetensors (written by `npx tsx scripts/sfp-step-trace.ts PRETRAINED ENGINE.safetensors STEPS`),
it instead repeats that script's steps (masks, then STEPS steps on the first STEPS*128 training images in file
order, constant rate) in PyTorch at float64 and at float32, and prints, per tensor, how far the engine's weights,
BN statistics and momentum are from the float64 ones, beside how far PyTorch's own float32 run is.

Needs Debian's python3-torch (apt-get install python3-torch); not part of the test suite.
Usage: python3 scripts/torch-sfp-crosscheck.py --mode soft|hard --pretrained CKPT --out DIR [--epochs 4 --lr 0.02 --seed 0]
"""
import argparse, copy, datetime, json, math, os, shlex, struct, sys, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN = np.array([125.3, 123.0, 113.9], dtype=np.float32) / 255
STD = np.array([63.0, 62.1, 66.7], dtype=np.float32) / 255


def load_cifar(folder, names):
    raw = b''.join(open(os.path.join(folder, n), 'rb').read() for n in names)
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3073)
    return rows[:, 1:].reshape(-1, 3, 32, 32).copy(), rows[:, 0].astype(np.int64)


def normalise(images):
    return torch.from_numpy((images.astype(np.float32) / 255 - MEAN[None, :, None, None]) / STD[None, :, None, None])


def augmented_batches(images, labels, batch, gen):
    order = torch.randperm(len(images), generator=gen).numpy()
    padded = np.pad(images, ((0, 0), (0, 0), (4, 4), (4, 4)))
    for start in range(0, len(images), batch):
        idx = order[start:start + batch]
        dy = torch.randint(0, 9, (len(idx),), generator=gen).numpy()
        dx = torch.randint(0, 9, (len(idx),), generator=gen).numpy()
        flip = torch.rand(len(idx), generator=gen).numpy() < 0.5
        out = np.empty((len(idx), 3, 32, 32), dtype=np.uint8)
        for k, i in enumerate(idx):
            crop = padded[i, :, dy[k]:dy[k] + 32, dx[k]:dx[k] + 32]
            out[k] = crop[:, :, ::-1] if flip[k] else crop
        yield normalise(out), torch.from_numpy(labels[idx])


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = stride != 1 or cin != cout

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        r = x
        if self.down:  # DownsampleA: subsample, then append zero channels
            r = x[:, :, ::2, ::2]
            r = torch.cat((r, r.mul(0)), 1)
        return F.relu(y + r)


class CifarResNet(nn.Module):
    def __init__(self, depth=20):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin = 16
        for s, width in enumerate([16, 32, 64]):
            blocks = []
            for b in range(n):
                blocks.append(Block(cin, width, 2 if (s > 0 and b == 0) else 1))
                cin = width
            setattr(self, f'layer{s + 1}', nn.Sequential(*blocks))
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def read_safetensors(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    kinds = {'F32': np.float32, 'I32': np.int32, 'I64': np.int64, 'U32': np.uint32, 'U8': np.uint8}  # torch 1.13 has no uint32: read as int64
    out = {}
    for name, info in header.items():
        if name == '__metadata__':
            out[name] = info
            continue
        a, b = info['data_offsets']
        array = np.frombuffer(data[a:b], dtype=kinds[info['dtype']]).reshape(info['shape'])
        out[name] = torch.from_numpy(array.astype(np.int64) if array.dtype == np.uint32 else array.copy())
    return out


def convs(model):
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


def choose_masks(model, rate):
    masks = []
    for conv in convs(model):
        w = conv.weight.detach()
        norms = w.flatten(1).norm(p=2, dim=1)
        pruned = int(w.shape[0] * rate)  # floor(C_out * P)
        order = sorted(range(len(norms)), key=lambda i: (norms[i].item(), i))
        keep = torch.ones(w.shape[0], dtype=torch.bool)
        keep[order[:pruned]] = False
        masks.append(keep)
    return masks


def apply_masks(model, masks, optimizer=None):
    with torch.no_grad():
        for conv, keep in zip(convs(model), masks):
            conv.weight[~keep] = 0
            if optimizer is not None:
                buf = optimizer.state.get(conv.weight, {}).get('momentum_buffer')
                if buf is not None:
                    buf[~keep] = 0


def recalibrate(model, images, labels, batches, gen):
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the batches
    model.train()
    with torch.no_grad():
        for k, (x, _) in enumerate(augmented_batches(images, labels, 128, gen)):
            if k >= batches:
                break
            model(x)
    for bn in norms:
        bn.momentum = 0.1


def evaluate(model, images, labels):
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(images), 500):
            x = normalise(images[start:start + 500])
            correct += (model(x).argmax(1).numpy() == labels[start:start + 500]).sum()
    return correct / len(images)


def traced_steps(model, masks, steps, lr, train_x, train_y, dtype):
    """The trace script's steps on a copy of `model` in `dtype`: its weights, BN statistics and momentum after them."""
    model = copy.deepcopy(model).to(dtype)
    apply_masks(model, masks)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    model.train()
    for step in range(steps):
        x = normalise(train_x[step * 128:(step + 1) * 128]).to(dtype)
        y = torch.from_numpy(train_y[step * 128:(step + 1) * 128])
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    names = {p: n for n, p in model.named_parameters()}
    state = {k: v for k, v in model.state_dict().items() if not k.endswith('num_batches_tracked')}
    for p, s in optimizer.state.items():
        state[f'optimizer.{names[p]}.momentum_buffer'] = s['momentum_buffer']
    return state


def trace(args, model, train_x, train_y):
    """The engine's state after the trace script's steps against PyTorch's in float64, beside PyTorch's own float32 run:
    the float32 round-off of two correct implementations, and how fast it grows, set the scale of a real difference."""
    engine = read_safetensors(args.trace)
    # The trace's own steps, rate and learning rate, so the two sides cannot disagree on them.
    meta = engine['__metadata__']
    steps, rate, lr = int(meta['steps']), float(meta['rate']), float(meta['lr'])
    masks = choose_masks(model, rate)
    conv_names = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    same = all(torch.equal(engine[f'masks.{n}'].bool(), keep) for n, keep in zip(conv_names, masks))
    print('masks: ' + ('the same in both' if same else 'DIFFER'))
    exact = traced_steps(model, masks, steps, lr, train_x, train_y, torch.float64)
    single = traced_steps(model, masks, steps, lr, train_x, train_y, torch.float32)
    print(f'{steps} steps at rate {rate} and lr {lr}; per tensor, max |x - float64| / max |float64|:')
    print(f'  {"tensor":55s} {"engine":>9s} {"torch f32":>9s}')
    rows = []
    for name, ref in exact.items():
        scale = ref.abs().max().item() or 1.0
        rows.append([(other[name].double() - ref).abs().max().item() / scale for other in (engine, single)])
        print(f'  {name:55s} {rows[-1][0]:9.2e} {rows[-1][1]:9.2e}')
    for label, pick in (('median over tensors', np.median), ('worst', np.max)):
        print(f'  {label:55s} {pick([r[0] for r in rows]):9.2e} {pick([r[1] for r in rows]):9.2e}')
    # What the next masking sees: how far the zeroed filters have regrown, and how many now outrank a kept one.
    print('pruned filters: mean L2 norm (engine, torch f32, torch f64) and how many exceed the smallest kept norm')
    totals = np.zeros(3, dtype=int)
    for name, keep in zip(conv_names, masks):
        norms = [src[f'{name}.weight'].double().flatten(1).norm(dim=1) for src in (engine, single, exact)]
        means = [n[~keep].mean().item() for n in norms]
        above = np.array([int((n[~keep] > n[keep].min()).sum().item()) for n in norms])
        totals += above
        print(f'  {name:18s} {means[0]:.4e} {means[1]:.4e} {means[2]:.4e}   {above[0]:3d} {above[1]:3d} {above[2]:3d}')
    print(f'  {"all":18s} {"":35s}{totals[0]:3d} {totals[1]:3d} {totals[2]:3d}')


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--mode', choices=['soft', 'hard'])
    p.add_argument('--trace', help="an engine checkpoint from scripts/sfp-step-trace.ts to compare with")
    p.add_argument('--pretrained', required=True)
    p.add_argument('--out')
    p.add_argument('--data', default=os.environ.get('CIFAR10_DIR', 'data/cifar-10-batches-bin'))
    p.add_argument('--rate', type=float, default=0.3)
    p.add_argument('--epochs', type=int, default=4)
    p.add_argument('--lr', type=float, default=0.02)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--threads', type=int, default=torch.get_num_threads())
    p.add_argument('--recalibrate', type=int, default=50)
    args = p.parse_args()
    if not args.trace and not (args.mode and args.out):
        p.error('give --mode and --out for a training run, or --trace ENGINE.safetensors')
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    recal_gen = torch.Generator().manual_seed(args.seed + 1)
    train_x, train_y = load_cifar(args.data, [f'data_batch_{i}.bin' for i in range(1, 6)])
    test_x, test_y = load_cifar(args.data, ['test_batch.bin'])

    model = CifarResNet(20)
    state = read_safetensors(args.pretrained)
    del state['__metadata__']
    # The checkpoint also holds optimizer state and masks; a pretrained start takes only the model's tensors.
    wanted = model.state_dict().keys()
    model.load_state_dict({k: v.long() if k.endswith('num_batches_tracked') else v for k, v in state.items() if k in wanted})
    if args.trace:
        return trace(args, model, train_x, train_y)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps_per_epoch = math.ceil(len(train_x) / 128)
    total = steps_per_epoch * args.epochs
    os.makedirs(args.out, exist_ok=True)
    config = {'model': 'resnet20', 'epochs': args.epochs, 'batchSize': 128, 'lr': args.lr, 'momentum': 0.9, 'nesterov': True,
              'weightDecay': 5e-4, 'schedule': 'cosine', 'warmupEpochs': 0, 'seed': args.seed, 'pretrained': args.pretrained,
              'sfpRate': args.rate, 'pruneEvery': 1, 'criterion': 'l2', 'hardPrune': args.mode == 'hard',
              'bnRecalibrate': args.recalibrate, 'engine': f'PyTorch {torch.__version__} on the CPU'}
    with open(os.path.join(args.out, 'run.json'), 'w') as f:
        json.dump({'command': shlex.join(['python3'] + sys.argv), 'config': config,
                   'data': f'CIFAR-10 from {args.data}: {len(train_x)} train, {len(test_x)} test images',
                   'startedAt': datetime.datetime.now(datetime.timezone.utc).isoformat()}, f, indent=1)
    log = open(os.path.join(args.out, 'metrics.jsonl'), 'w')
    base = evaluate(model, test_x, test_y)
    masks = choose_masks(model, args.rate)
    apply_masks(model, masks)
    print(json.dumps({'pretrainedTestAccuracy': base, 'mode': args.mode, 'threads': args.threads}), flush=True)
    step = 0
    for epoch in range(args.epochs):
        model.train()
        began, seen, correct, loss_sum = time.time(), 0, 0, 0.0
        for x, y in augmented_batches(train_x, train_y, 128, gen):
            for group in optimizer.param_groups:
                group['lr'] = 0.5 * args.lr * (1 + math.cos(math.pi * step / total))
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if args.mode == 'hard':
                apply_masks(model, masks, optimizer)
            step += 1
            seen += len(y)
            correct += (logits.argmax(1) == y).sum().item()
            loss_sum += loss.item() * len(y)
        record = {'epoch': epoch + 1, 'lr': optimizer.param_groups[0]['lr'], 'trainLoss': loss_sum / seen, 'trainAccuracy': correct / seen,
                  'testAccuracy': evaluate(model, test_x, test_y)}
        if args.mode == 'soft':
            previous = masks
            masks = choose_masks(model, args.rate)
            # As `train` counts it: filters whose mask bit flipped (one filter swapped for another counts 2).
            record['regrown'] = int(sum((a != b).sum().item() for a, b in zip(masks, previous)))
            apply_masks(model, masks)
        if args.recalibrate > 0:
            record['testAccuracyMaskedStaleBN'] = evaluate(model, test_x, test_y)
            recalibrate(model, train_x, train_y, args.recalibrate, recal_gen)
        record['testAccuracyMasked'] = evaluate(model, test_x, test_y)
        record['seconds'] = time.time() - began
        record['imagesPerSecond'] = seen / record['seconds']
        print(json.dumps(record), flush=True)
        log.write(json.dumps(record) + '\n')
        log.flush()


if __name__ == '__main__':
    main()
