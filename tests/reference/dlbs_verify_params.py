#!/usr/bin/env python3
"""Reproduce DLBS docs/models/models.md #Parameters column.

Rule (Caffe blob count, i.e. sum of np.prod(b.shape) over EVERY blob in net.params):
  Convolution   : Cout*Cin*kh*kw (+Cout if bias_term, Caffe default = true)
  InnerProduct  : out*in + out
  BatchNorm     : mean[C] + variance[C] + moving_average_fraction[1]  = 2C+1
  Scale(bias)   : gamma[C] + beta[C]                                 = 2C
Inference (deploy) nets are counted: no GoogLeNet/Inception auxiliary heads.
"""
import math
PUB = dict(acoustic_model=34678784, alexnet=62378344, alexnet_owt=61100840,
           deep_mnist=11972510, googlenet=6998552, inception3=23869094,
           inception4=42743133, overfeat=145920872, resnet18=11703485,
           resnet34=21819085, resnet50=25610269, resnet101=44654608,
           resnet152=60344387, resnet200=64850035, resnet269=102326456,
           vgg11=132863336, vgg13=133047848, vgg16=138357544, vgg19=143667240)
SIZE_MB = dict(acoustic_model=133, alexnet=238, alexnet_owt=233, deep_mnist=46,
           googlenet=27, inception3=91, inception4=163, overfeat=557, resnet18=45,
           resnet34=84, resnet50=98, resnet101=171, resnet152=231, resnet200=248,
           resnet269=391, vgg11=507, vgg13=508, vgg16=528, vgg19=548)

class Net:
    def __init__(s): s.L = []   # (kind, cin, cout, kh, kw, bias)
    def conv(s, i, o, kh, kw=None, bias=True, bn=False):
        s.L.append(('conv', i, o, kh, kw or kh, bias))
        if bn: s.L.append(('bn', o))
        return o
    def fc(s, i, o): s.L.append(('fc', i, o)); return o
    def tv(s):      # torchvision-style trainable count: BN = gamma+beta
        t = 0
        for l in s.L:
            if l[0] == 'conv': t += l[1]*l[2]*l[3]*l[4] + (l[2] if l[5] else 0)
            elif l[0] == 'fc': t += l[1]*l[2] + l[2]
            else: t += 2*l[1]
        return t
    def bn_ch(s): return sum(l[1] for l in s.L if l[0] == 'bn')
    def bn_n(s):  return sum(1 for l in s.L if l[0] == 'bn')
    def caffe(s): return s.tv() + 2*s.bn_ch() + s.bn_n()

def mlp(dims):
    n = Net(); [n.fc(a, b) for a, b in zip(dims, dims[1:])]; return n

def alexnet(c1, c2, c3, c4, c5):
    n = Net(); n.conv(3, c1, 11); n.conv(c1, c2, 5); n.conv(c2, c3, 3); n.conv(c3, c4, 3); n.conv(c4, c5, 3)
    n.fc(c5*36, 4096); n.fc(4096, 4096); n.fc(4096, 1000); return n

def overfeat():
    n = Net(); n.conv(3, 96, 11); n.conv(96, 256, 5); n.conv(256, 512, 3); n.conv(512, 1024, 3); n.conv(1024, 1024, 3)
    n.fc(1024*36, 3072); n.fc(3072, 4096); n.fc(4096, 1000); return n

def vgg(cfg):
    n = Net(); i = 3
    for v in cfg:
        if v != 'M': i = n.conv(i, v, 3)
    n.fc(512*49, 4096); n.fc(4096, 4096); n.fc(4096, 1000); return n

def googlenet_bvlc():
    n = Net(); n.conv(3, 64, 7); n.conv(64, 64, 1); n.conv(64, 192, 3); x = 192
    for a, b1, b2, c1, c2, d in [(64,96,128,16,32,32),(128,128,192,32,96,64),(192,96,208,16,48,64),
                                 (160,112,224,24,64,64),(128,128,256,24,64,64),(112,144,288,32,64,64),
                                 (256,160,320,32,128,128),(256,160,320,32,128,128),(384,192,384,48,128,128)]:
        n.conv(x, a, 1); n.conv(x, b1, 1); n.conv(b1, b2, 3); n.conv(x, c1, 1); n.conv(c1, c2, 5); n.conv(x, d, 1)
        x = a + b2 + c2 + d
    n.fc(x, 1000); return n

def resnet(kind, units, conv1_bias=False, proj_2a=False):
    n = Net(); n.conv(3, 64, 7, bias=conv1_bias, bn=True); x = 64
    for w, u in zip([64, 128, 256, 512], units):
        out = w*4 if kind == 'bottleneck' else w
        for b in range(u):
            c = lambda i, o, k: n.conv(i, o, k, bias=False, bn=True)
            if b == 0 and (x != out or proj_2a): c(x, out, 1)          # branch1 projection
            if kind == 'bottleneck': c(x, w, 1); c(w, w, 3); c(w, out, 1)
            else: c(x, w, 3); c(w, w, 3)
            x = out
    n.fc(x, 1000); return n

def inception3():
    n = Net(); c = lambda i, o, kh, kw=None: n.conv(i, o, kh, kw, bias=False, bn=True)
    c(3,32,3); c(32,32,3); c(32,64,3); c(64,80,1); c(80,192,3); x = 192
    for pf in (32, 64, 64):
        c(x,64,1); c(x,48,1); c(48,64,5); c(x,64,1); c(64,96,3); c(96,96,3); c(x,pf,1); x = 224+pf
    c(x,384,3); c(x,64,1); c(64,96,3); c(96,96,3); x = 384+96+x
    for c7 in (128, 160, 160, 192):
        c(x,192,1); c(x,c7,1); c(c7,c7,1,7); c(c7,192,7,1)
        c(x,c7,1); c(c7,c7,7,1); c(c7,c7,1,7); c(c7,c7,7,1); c(c7,192,1,7); c(x,192,1); x = 768
    c(x,192,1); c(192,320,3); c(x,192,1); c(192,192,1,7); c(192,192,7,1); c(192,192,3); x = 320+192+x
    for _ in range(2):
        c(x,320,1); c(x,384,1); c(384,384,1,3); c(384,384,3,1)
        c(x,448,1); c(448,384,3); c(384,384,1,3); c(384,384,3,1); c(x,192,1); x = 2048
    n.fc(2048, 1000); return n

def inception4():
    n = Net(); c = lambda i, o, kh, kw=None: n.conv(i, o, kh, kw, bias=False, bn=True)
    c(3,32,3); c(32,32,3); c(32,64,3); c(64,96,3)
    c(160,64,1); c(64,96,3); c(160,64,1); c(64,64,1,7); c(64,64,7,1); c(64,96,3); c(192,192,3)
    for _ in range(4):
        i = 384; c(i,96,1); c(i,64,1); c(64,96,3); c(i,64,1); c(64,96,3); c(96,96,3); c(i,96,1)
    i = 384; c(i,384,3); c(i,192,1); c(192,224,3); c(224,256,3)
    for _ in range(7):
        i = 1024; c(i,384,1); c(i,192,1); c(192,224,1,7); c(224,256,7,1)
        c(i,192,1); c(192,192,7,1); c(192,224,1,7); c(224,224,7,1); c(224,256,1,7); c(i,128,1)
    i = 1024; c(i,192,1); c(192,192,3); c(i,256,1); c(256,256,1,7); c(256,320,7,1); c(320,320,3)
    for _ in range(3):
        i = 1536; c(i,256,1); c(i,384,1); c(384,256,1,3); c(384,256,3,1)
        c(i,384,1); c(384,448,3,1); c(448,512,1,3); c(512,256,1,3); c(512,256,3,1); c(i,256,1)
    n.fc(1536, 1000); return n

MODELS = dict(
    acoustic_model=mlp([540, 2048, 2048, 2048, 2048, 2048, 8192]),
    alexnet=alexnet(96, 256, 384, 384, 256),
    alexnet_owt=alexnet(64, 192, 384, 256, 256),
    deep_mnist=mlp([784, 2500, 2000, 1500, 1000, 500, 10]),
    googlenet=googlenet_bvlc(),
    inception3=inception3(), inception4=inception4(), overfeat=overfeat(),
    resnet18=resnet('basic', [2,2,2,2], proj_2a=True),
    resnet34=resnet('basic', [3,4,6,3], proj_2a=True),
    resnet50=resnet('bottleneck', [3,4,6,3], conv1_bias=True),
    resnet101=resnet('bottleneck', [3,4,23,3]),
    resnet152=resnet('bottleneck', [3,8,36,3]),
    resnet200=resnet('bottleneck', [3,24,36,3]),
    resnet269=resnet('bottleneck', [3,30,48,8]),
    vgg11=vgg([64,'M',128,'M',256,256,'M',512,512,'M',512,512,'M']),
    vgg13=vgg([64,64,'M',128,128,'M',256,256,'M',512,512,'M',512,512,'M']),
    vgg16=vgg([64,64,'M',128,128,'M',256,256,256,'M',512,512,512,'M',512,512,512,'M']),
    vgg19=vgg([64,64,'M',128,128,'M',256,256,256,256,'M',512,512,512,512,'M',512,512,512,512,'M']),
)
# torchvision-style reference architectures (what synprof would count)
TV = dict(resnet18=resnet('basic', [2,2,2,2]).tv(), resnet34=resnet('basic', [3,4,6,3]).tv(),
          resnet50=resnet('bottleneck', [3,4,6,3]).tv(), resnet101=resnet('bottleneck', [3,4,23,3]).tv(),
          resnet152=resnet('bottleneck', [3,8,36,3]).tv(), resnet200=resnet('bottleneck', [3,24,36,3]).tv(),
          resnet269=resnet('bottleneck', [3,30,48,8]).tv())
ok = True
print(f"{'model':15s}{'caffe_blobs':>13s}{'published':>13s}{'res':>5s}{'arch_tv':>13s}{'extra':>9s}{'2*sumC':>9s}{'nBN':>5s}{'MB':>5s}")
for k, n in MODELS.items():
    cb = n.caffe(); tv = TV.get(k, n.tv())
    mb = PUB[k]*4/2**20   # fp32 MiB; DLBS column is this rounded inconsistently (floor or ceil)
    ok &= (cb == PUB[k]) and abs(mb - SIZE_MB[k]) < 1
    print(f"{k:15s}{cb:13,d}{PUB[k]:13,d}{PUB[k]-cb:5d}{tv:13,d}{PUB[k]-tv:9,d}{2*n.bn_ch():9,d}{n.bn_n():5d}{mb:8.2f}/{SIZE_MB[k]}")
print("ALL EXACT" if ok else "MISMATCH")
