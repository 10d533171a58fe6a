"""PyTorch replicas of RepDistiller's CIFAR models (architectures and state-dict names of its models/ folder),
written for islkd: apps/pth_to_safetensors.py checks .pth files against them, and the parity tests require the
C++ zoo to reproduce their logits from the same safetensors weights.
Each model's feats(x, preact) returns RepDistiller's `forward(x, is_feat=True, preact=preact)`: the list of
intermediate features (stem, each stage, pooled vector) and the logits, with the same pre-activation choices."""
import torch
import torch.nn as nn
import torch.nn.functional as F


def _avg_pool_final(x, k):
    # RepDistiller pools with a fixed k x k window; at CIFAR size the map is exactly k x k. A smaller map (28 x 28
    # Fashion-MNIST inputs: 7 x 7) is averaged whole, as the C++ zoo does (models/common.cpp final_avg_pool).
    if x.shape[2] <= k and x.shape[3] <= k:
        return x.mean((2, 3))
    return F.avg_pool2d(x, k).flatten(1)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return F.relu(self.forward_pre(x))

    def forward_pre(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return y + (x if self.downsample is None else self.downsample(x))


class ResNet(nn.Module):
    def __init__(self, depth, widths, num_classes, in_channels=3):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        cin = widths[0]
        for s in range(3):
            blocks = []
            for i in range(n):
                blocks.append(ResBlock(cin, widths[s + 1], 2 if (i == 0 and s > 0) else 1))
                cin = widths[s + 1]
            setattr(self, "layer%d" % (s + 1), nn.Sequential(*blocks))
        self.avgpool = nn.AvgPool2d(8)
        self.fc = nn.Linear(widths[3], num_classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(_avg_pool_final(x, 8))

    def feats(self, x, preact=False):
        # resnet.py: [f0, f1, f2, f3, f4]; with preact f1..f3 are the last blocks' outputs before their ReLU.
        x = self.relu(self.bn1(self.conv1(x)))
        out = [x]
        for layer in (self.layer1, self.layer2, self.layer3):
            for b in layer[:-1]:
                x = b(x)
            pre = layer[-1].forward_pre(x)
            x = F.relu(pre)
            out.append(pre if preact else x)
        x = _avg_pool_final(x, 8)
        out.append(x)
        return out, self.fc(x)


class WideBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.equal = cin == cout
        self.convShortcut = None if self.equal else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

    def forward(self, x):
        a = self.relu1(self.bn1(x))
        y = self.conv2(self.relu2(self.bn2(self.conv1(a))))
        return y + (x if self.equal else self.convShortcut(a))


class NetworkBlock(nn.Module):
    def __init__(self, n, cin, cout, stride):
        super().__init__()
        self.layer = nn.Sequential(*[WideBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1)
                                     for i in range(n)])

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(self, depth, widen, num_classes, in_channels=3):
        super().__init__()
        n = (depth - 4) // 6
        ch = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(in_channels, ch[0], 3, 1, 1, bias=False)
        self.block1 = NetworkBlock(n, ch[0], ch[1], 1)
        self.block2 = NetworkBlock(n, ch[1], ch[2], 2)
        self.block3 = NetworkBlock(n, ch[2], ch[3], 2)
        self.bn1 = nn.BatchNorm2d(ch[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(ch[3], num_classes)

    def forward(self, x):
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        return self.fc(_avg_pool_final(self.relu(self.bn1(x)), 8))

    def feats(self, x, preact=False):
        # wrn.py: [f0, f1, f2, f3, f4]; with preact f1, f2 go through the next block's bn1 and f3 through bn1.
        f0 = self.conv1(x)
        f1 = self.block1(f0)
        f2 = self.block2(f1)
        f3 = self.block3(f2)
        f4 = _avg_pool_final(self.relu(self.bn1(f3)), 8)
        logits = self.fc(f4)
        if preact:
            f1 = self.block2.layer[0].bn1(f1)
            f2 = self.block3.layer[0].bn1(f2)
            f3 = self.bn1(f3)
        return [f0, f1, f2, f3, f4], logits


VGG_CFG = {
    8: [[64], [128], [256], [512], [512]],
    11: [[64], [128], [256, 256], [512, 512], [512, 512]],
    13: [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    16: [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    19: [[64, 64], [128, 128], [256] * 4, [512] * 4, [512] * 4],
}


class VGG(nn.Module):
    def __init__(self, depth, num_classes, in_channels=3):
        super().__init__()
        cin = in_channels
        for b, widths in enumerate(VGG_CFG[depth]):
            mods = []
            for w in widths:
                mods += [nn.Conv2d(cin, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
                cin = w
            setattr(self, "block%d" % b, nn.Sequential(*mods[:-1]))
        self.pool0 = nn.MaxPool2d(2, 2)
        self.pool1 = nn.MaxPool2d(2, 2)
        self.pool2 = nn.MaxPool2d(2, 2)
        self.pool3 = nn.MaxPool2d(2, 2)
        self.pool4 = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(512, num_classes)

    def forward(self, x):
        h = x.shape[2]
        x = self.pool0(F.relu(self.block0(x)))
        x = self.pool1(F.relu(self.block1(x)))
        x = self.pool2(F.relu(self.block2(x)))
        x = F.relu(self.block3(x))
        if h == 64:
            x = self.pool3(x)
        x = F.relu(self.block4(x))
        return self.classifier(self.pool4(x).flatten(1))

    def feats(self, x, preact=False):
        # vgg.py: [f0, f1, f2, f3, f4, f5], f0 = relu(block0); with preact f1..f4 are the blocks' outputs before
        # their ReLU.
        h = x.shape[2]
        x = F.relu(self.block0(x))
        out = [x]
        x = self.pool0(x)
        for b, block in enumerate((self.block1, self.block2, self.block3, self.block4)):
            pre = block(x)
            x = F.relu(pre)
            out.append(pre if preact else x)
            if b < 2 or (b == 2 and h == 64):
                x = (self.pool1, self.pool2, self.pool3)[b](x)
        x = self.pool4(x).flatten(1)
        out.append(x)
        return out, self.classifier(x)


def _conv_bn_relu(cin, cout, k, stride):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hid = cin * t
        self.use_res = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin, hid, 1, 1, 0, bias=False), nn.BatchNorm2d(hid), nn.ReLU(inplace=True),
            nn.Conv2d(hid, hid, 3, stride, 1, groups=hid, bias=False), nn.BatchNorm2d(hid), nn.ReLU(inplace=True),
            nn.Conv2d(hid, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    """RepDistiller's mobile_half: expansion 6, width 0.5."""

    def __init__(self, num_classes, in_channels=3, t=6, width=0.5):
        super().__init__()
        setting = [(1, 16, 1, 1), (t, 24, 2, 1), (t, 32, 3, 2), (t, 64, 4, 2), (t, 96, 3, 1), (t, 160, 3, 2),
                   (t, 320, 1, 1)]
        cin = int(32 * width)
        self.conv1 = _conv_bn_relu(in_channels, cin, 3, 2)
        self.blocks = nn.ModuleList()
        for e, c, n, s in setting:
            cout = int(c * width)
            stage = []
            for i in range(n):
                stage.append(InvertedResidual(cin, cout, s if i == 0 else 1, e))
                cin = cout
            self.blocks.append(nn.Sequential(*stage))
        last = int(1280 * width) if width > 1.0 else 1280
        self.conv2 = _conv_bn_relu(cin, last, 1, 1)
        self.classifier = nn.Sequential(nn.Linear(last, num_classes))
        self.avgpool = nn.AvgPool2d(2, ceil_mode=True)

    def forward(self, x):
        x = self.conv1(x)
        for b in self.blocks:
            x = b(x)
        return self.classifier(self.avgpool(self.conv2(x)).flatten(1))

    def feats(self, x, preact=False):
        # mobilenetv2.py: f0 = conv1, f1..f4 after blocks 1, 2, 4, 6, f5 pooled; preact changes nothing.
        x = self.conv1(x)
        out = [x]
        for i, b in enumerate(self.blocks):
            x = b(x)
            if i in (1, 2, 4, 6):
                out.append(x)
        x = self.avgpool(self.conv2(x)).flatten(1)
        out.append(x)
        return out, self.classifier(x)


def _shuffle(x, g):
    n, c, h, w = x.shape
    return x.view(n, g, c // g, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleV1Block(nn.Module):
    def __init__(self, cin, cout, stride, groups):
        super().__init__()
        mid = cout // 4
        self.g1 = 1 if cin == 24 else groups
        self.stride = stride
        self.conv1 = nn.Conv2d(cin, mid, 1, groups=self.g1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.forward_pre(x))

    def forward_pre(self, x):
        y = _shuffle(F.relu(self.bn1(self.conv1(x))), self.g1)
        y = self.bn3(self.conv3(F.relu(self.bn2(self.conv2(y)))))
        if self.stride == 2:
            return torch.cat([y, F.avg_pool2d(x, 3, 2, 1)], 1)
        return y + x


class ShuffleV1(nn.Module):
    def __init__(self, num_classes, in_channels=3, widths=(240, 480, 960), blocks=(4, 8, 4), groups=3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 24, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        cin = 24
        for l in range(3):
            mods = []
            for i in range(blocks[l]):
                mods.append(ShuffleV1Block(cin, widths[l] - (cin if i == 0 else 0), 2 if i == 0 else 1, groups))
                cin = widths[l]
            setattr(self, "layer%d" % (l + 1), nn.Sequential(*mods))
        self.linear = nn.Linear(widths[2], num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(_avg_pool_final(x, 4))

    def feats(self, x, preact=False):
        # ShuffleNetv1.py: [f0, f1, f2, f3, f4]; with preact the last blocks' outputs before their ReLU.
        x = F.relu(self.bn1(self.conv1(x)))
        out = [x]
        for layer in (self.layer1, self.layer2, self.layer3):
            for b in layer[:-1]:
                x = b(x)
            pre = layer[-1].forward_pre(x)
            x = F.relu(pre)
            out.append(pre if preact else x)
        x = _avg_pool_final(x, 4)
        out.append(x)
        return out, self.linear(x)


class ShuffleV2Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c // 2
        self.c = h
        self.conv1 = nn.Conv2d(h, h, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(h)
        self.conv2 = nn.Conv2d(h, h, 3, 1, 1, groups=h, bias=False)
        self.bn2 = nn.BatchNorm2d(h)
        self.conv3 = nn.Conv2d(h, h, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(h)

    def forward(self, x):
        return self.forward_pre(x)[0]

    def forward_pre(self, x):
        # ShuffleNetv2.py's is_last block also returns preact = cat([x1, bn3(..)]): before the ReLU and the shuffle.
        a, b = x[:, :self.c], x[:, self.c:]
        b = F.relu(self.bn1(self.conv1(b)))
        pre = self.bn3(self.conv3(self.bn2(self.conv2(b))))
        return _shuffle(torch.cat([a, F.relu(pre)], 1), 2), torch.cat([a, pre], 1)


class ShuffleV2Down(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        mid = cout // 2
        self.conv1 = nn.Conv2d(cin, cin, 3, 2, 1, groups=cin, bias=False)
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv2 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv4 = nn.Conv2d(mid, mid, 3, 2, 1, groups=mid, bias=False)
        self.bn4 = nn.BatchNorm2d(mid)
        self.conv5 = nn.Conv2d(mid, mid, 1, bias=False)
        self.bn5 = nn.BatchNorm2d(mid)

    def forward(self, x):
        left = F.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = F.relu(self.bn3(self.conv3(x)))
        right = F.relu(self.bn5(self.conv5(self.bn4(self.conv4(right)))))
        return _shuffle(torch.cat([left, right], 1), 2)


class ShuffleV2(nn.Module):
    def __init__(self, num_classes, in_channels=3, widths=(116, 232, 464, 1024), blocks=(3, 7, 3)):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 24, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        cin = 24
        for l in range(3):
            mods = [ShuffleV2Down(cin, widths[l])] + [ShuffleV2Block(widths[l]) for _ in range(blocks[l])]
            cin = widths[l]
            setattr(self, "layer%d" % (l + 1), nn.Sequential(*mods))
        self.conv2 = nn.Conv2d(cin, widths[3], 1, bias=False)
        self.bn2 = nn.BatchNorm2d(widths[3])
        self.linear = nn.Linear(widths[3], num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.linear(_avg_pool_final(x, 4))

    def feats(self, x, preact=False):
        # ShuffleNetv2.py: [f0, f1, f2, f3, f4]; with preact the last blocks' preact.
        x = F.relu(self.bn1(self.conv1(x)))
        out = [x]
        for layer in (self.layer1, self.layer2, self.layer3):
            for b in layer[:-1]:
                x = b(x)
            x, pre = layer[-1].forward_pre(x)
            out.append(pre if preact else x)
        x = F.relu(self.bn2(self.conv2(x)))
        x = _avg_pool_final(x, 4)
        out.append(x)
        return out, self.linear(x)


_R = (16, 16, 32, 64)
_R4 = (32, 64, 128, 256)
MODELS = {
    "resnet8": lambda k, c: ResNet(8, _R, k, c),
    "resnet14": lambda k, c: ResNet(14, _R, k, c),
    "resnet20": lambda k, c: ResNet(20, _R, k, c),
    "resnet32": lambda k, c: ResNet(32, _R, k, c),
    "resnet44": lambda k, c: ResNet(44, _R, k, c),
    "resnet56": lambda k, c: ResNet(56, _R, k, c),
    "resnet110": lambda k, c: ResNet(110, _R, k, c),
    "resnet8x4": lambda k, c: ResNet(8, _R4, k, c),
    "resnet32x4": lambda k, c: ResNet(32, _R4, k, c),
    "wrn_16_1": lambda k, c: WideResNet(16, 1, k, c),
    "wrn_16_2": lambda k, c: WideResNet(16, 2, k, c),
    "wrn_40_1": lambda k, c: WideResNet(40, 1, k, c),
    "wrn_40_2": lambda k, c: WideResNet(40, 2, k, c),
    "vgg8": lambda k, c: VGG(8, k, c),
    "vgg11": lambda k, c: VGG(11, k, c),
    "vgg13": lambda k, c: VGG(13, k, c),
    "vgg16": lambda k, c: VGG(16, k, c),
    "vgg19": lambda k, c: VGG(19, k, c),
    "MobileNetV2": lambda k, c: MobileNetV2(k, c),
    "ShuffleV1": lambda k, c: ShuffleV1(k, c),
    "ShuffleV2": lambda k, c: ShuffleV2(k, c),
}


def build(name, num_classes, in_channels=3):
    return MODELS[name](num_classes, in_channels)
