/* GEMM register tiles from L1, f32 AVX-512: how close each shape comes to the FMA peak
 * (benches/host/fma_peak.c) with its data hot, before memory enters.
 *
 *     gcc -O2 -march=native benches/host/tile_shapes.c -o /tmp/tile_shapes && /tmp/tile_shapes
 *
 * 12x2: the pixel tile (`kernels/tile.rs`: 12 broadcast A rows x 2 vectors of B);
 * 12x2 embedded: the same with the broadcast folded into each FMA (`{1to16}`);
 * 8x3: fewer broadcasts per FMA; 14x2: 28 accumulators (the channel tile's widest, ctile.rs).
 * On the Zen 5 VM (benches/peers/RESULTS.md section 23): 246, 208, 242-251 and 254 GFLOP/s
 * against a 265 GFLOP/s peak. */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
#define KC 256
float A[KC*32] __attribute__((aligned(64)));
float B[KC*48] __attribute__((aligned(64))); /* the widest tile (8x3) reads 48 floats a K step */
float C[64*32] __attribute__((aligned(64)));
// variants 1 and 4: M broadcast rows by 2 vectors, separate broadcasts (as compiled):
// 12x2 (24 accumulators) and 14x2 (28)
#define TILE_MX2(M) \
__attribute__((noinline)) void k##M##x2(const float*a,const float*b,float*c,int kc){ \
  __m512 acc[M][2]; \
  for(int i=0;i<M;i++){acc[i][0]=_mm512_setzero_ps();acc[i][1]=_mm512_setzero_ps();} \
  for(int k=0;k<kc;k++){ \
    __m512 b0=_mm512_load_ps(b+k*32),b1=_mm512_load_ps(b+k*32+16); \
    _Pragma("GCC unroll 16") \
    for(int i=0;i<M;i++){__m512 x=_mm512_set1_ps(a[k*M+i]);acc[i][0]=_mm512_fmadd_ps(x,b0,acc[i][0]);acc[i][1]=_mm512_fmadd_ps(x,b1,acc[i][1]);} \
  } \
  for(int i=0;i<M;i++){_mm512_store_ps(c+i*32,acc[i][0]);_mm512_store_ps(c+i*32+16,acc[i][1]);} \
}
TILE_MX2(12)
TILE_MX2(14)
// variant 2: embedded broadcast via inline asm
__attribute__((noinline)) void k12x2e(const float*a,const float*b,float*c,int kc){
  register __m512 c0 asm("zmm0"),c1 asm("zmm1"),c2 asm("zmm2"),c3 asm("zmm3"),c4 asm("zmm4"),c5 asm("zmm5"),c6 asm("zmm6"),c7 asm("zmm7"),c8 asm("zmm8"),c9 asm("zmm9"),c10 asm("zmm10"),c11 asm("zmm11"),c12 asm("zmm12"),c13 asm("zmm13"),c14 asm("zmm14"),c15 asm("zmm15"),c16 asm("zmm16"),c17 asm("zmm17"),c18 asm("zmm18"),c19 asm("zmm19"),c20 asm("zmm20"),c21 asm("zmm21"),c22 asm("zmm22"),c23 asm("zmm23");
  asm volatile(
   "vpxord %%zmm0,%%zmm0,%%zmm0\n vmovaps %%zmm0,%%zmm1\n vmovaps %%zmm0,%%zmm2\n vmovaps %%zmm0,%%zmm3\n vmovaps %%zmm0,%%zmm4\n vmovaps %%zmm0,%%zmm5\n vmovaps %%zmm0,%%zmm6\n vmovaps %%zmm0,%%zmm7\n vmovaps %%zmm0,%%zmm8\n vmovaps %%zmm0,%%zmm9\n vmovaps %%zmm0,%%zmm10\n vmovaps %%zmm0,%%zmm11\n vmovaps %%zmm0,%%zmm12\n vmovaps %%zmm0,%%zmm13\n vmovaps %%zmm0,%%zmm14\n vmovaps %%zmm0,%%zmm15\n vmovaps %%zmm0,%%zmm16\n vmovaps %%zmm0,%%zmm17\n vmovaps %%zmm0,%%zmm18\n vmovaps %%zmm0,%%zmm19\n vmovaps %%zmm0,%%zmm20\n vmovaps %%zmm0,%%zmm21\n vmovaps %%zmm0,%%zmm22\n vmovaps %%zmm0,%%zmm23\n"
   "1:\n vmovaps (%[b]),%%zmm24\n vmovaps 64(%[b]),%%zmm25\n"
#define E(i,r0,r1) "vfmadd231ps " #i "*4(%[a])%{1to16%},%%zmm24,%%zmm" #r0 "\n vfmadd231ps " #i "*4(%[a])%{1to16%},%%zmm25,%%zmm" #r1 "\n"
   E(0,0,1) E(1,2,3) E(2,4,5) E(3,6,7) E(4,8,9) E(5,10,11) E(6,12,13) E(7,14,15) E(8,16,17) E(9,18,19) E(10,20,21) E(11,22,23)
   "add $48,%[a]\n add $128,%[b]\n dec %[k]\n jnz 1b\n"
   : [a]"+r"(a),[b]"+r"(b),[k]"+r"(kc),"=v"(c0),"=v"(c1),"=v"(c2),"=v"(c3),"=v"(c4),"=v"(c5),"=v"(c6),"=v"(c7),"=v"(c8),"=v"(c9),"=v"(c10),"=v"(c11),"=v"(c12),"=v"(c13),"=v"(c14),"=v"(c15),"=v"(c16),"=v"(c17),"=v"(c18),"=v"(c19),"=v"(c20),"=v"(c21),"=v"(c22),"=v"(c23)
   :: "zmm24","zmm25","memory");
  _mm512_store_ps(c,c0);_mm512_store_ps(c+16,c1);_mm512_store_ps(c+32,c22);_mm512_store_ps(c+48,c23);
}
// variant 3: 8x3 tile (8 broadcasts, 3 vectors, 24 FMAs)
__attribute__((noinline)) void k8x3(const float*a,const float*b,float*c,int kc){
  __m512 acc[8][3];
  for(int i=0;i<8;i++)for(int j=0;j<3;j++)acc[i][j]=_mm512_setzero_ps();
  for(int k=0;k<kc;k++){
    __m512 b0=_mm512_load_ps(b+k*48),b1=_mm512_load_ps(b+k*48+16),b2=_mm512_load_ps(b+k*48+32);
    #pragma GCC unroll 8
    for(int i=0;i<8;i++){__m512 x=_mm512_set1_ps(a[k*8+i]);acc[i][0]=_mm512_fmadd_ps(x,b0,acc[i][0]);acc[i][1]=_mm512_fmadd_ps(x,b1,acc[i][1]);acc[i][2]=_mm512_fmadd_ps(x,b2,acc[i][2]);}
  }
  for(int i=0;i<8;i++)for(int j=0;j<3;j++)_mm512_store_ps(c+i*48+j*16,acc[i][j]);
}
typedef void (*F)(const float*,const float*,float*,int);
void run(const char*n,F f,int fl){ for(int r=0;r<3;r++){int it=200000; double t=now(); for(int i=0;i<it;i++) f(A,B,C,KC); t=now()-t; printf("%s %.1f GFLOP/s\n",n,(double)it*KC*fl*2/t/1e9);} }
int main(){ for(int i=0;i<KC*32;i++)A[i]=1e-3f*(i%7); for(int i=0;i<KC*48;i++)B[i]=1e-3f*(i%5);
 run("12x2 bcast",k12x2,24*16); run("12x2 embedded",k12x2e,24*16); run("8x3",k8x3,24*16); run("14x2",k14x2,28*16); }
